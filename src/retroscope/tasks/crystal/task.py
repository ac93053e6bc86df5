"""The ``crystal`` task: count the Ca+ ions of a Coulomb crystal from one fluorescence image
(Allsopp et al., J. Chem. Phys. 163, 044201 (2025)).

Stored per sample: the clean ``image`` (rows = trap axis z, cols = radial x; photons per ion,
each ion's spot integrating to one; :mod:`.render`) of a crystal formed at the sampled trap
operating point and secular temperature (:mod:`.formation`), and ``extent_um`` = (length along
z, width along x) of its equilibrium Ca+ framework. Online (DataLoader): camera noise and the
paper's augmentations (:mod:`.camera`). Then the automatic crop to the crystal (:mod:`.crop`):
the network's input (``input_scale`` x the frame shape; 128 x 88 px for the default 160 x 112
frame) is a window of the frame at its own 4 um/px centred on the crystal's box, found in the
noisy frame, so sizes in um are kept; with ``zoom=True`` the box is instead resampled with one
isotropic zoom onto the input, and small crystals are seen at up to 4x. The network sees that image
divided by its 99.9th percentile and clipped to [0, 1] ("brightness normalisation"), one
channel.

The default parameter box is the paper's training grid (N 30-350, V 170-300 V, U 1.5-3.5 V,
eta 0.240-0.355) sampled at random, plus the secular temperature; :meth:`CrystalTask.paper_grid`
gives the grid itself (x 3 replicas). ``with_config(dark="CaF+", n_dark=[0, 100])`` makes mixed
crystals and adds the dark-ion number to the targets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from retroscope.core.params import ParameterSpace, Scalar
from retroscope.core.targets import LinearTargets
from retroscope.core.task import DemoSettings, InputSpec, ModelSpec, Task
from retroscope.tasks.crystal.formation import (
    DEFAULT_TEMPERATURE_MK,
    FormationConfig,
    form_crystal,
    form_crystals,
)
from retroscope.tasks.crystal.render import ImagingConfig, brightness_normalise, render
from retroscope.tasks.crystal.trap import OperatingPoint, get_species, get_trap


@dataclass(frozen=True)
class CrystalRanges:
    """The (low, high) ranges the crystal's parameters are sampled from."""

    n_ca: tuple[int, int] = (30, 350)
    v_rf: tuple[float, float] = (170.0, 300.0)
    v_end: tuple[float, float] = (1.5, 3.5)
    eta: tuple[float, float] = (0.240, 0.355)
    temperature_mk: tuple[float, float] = (2.0, 20.0)
    n_dark: tuple[int, int] = (0, 100)


@dataclass(frozen=True)
class CrystalSettings:
    """What the stored images depend on (``CrystalTask.settings``, hashed into the manifest):
    trap, parameter ranges, dark species (a name or a mass in u), the resolved targets, the
    paper's grid or None, formation and imaging; nested fields may be given flat
    (``with_config(n_dark=[0, 100], pixel_um=10)``)."""

    trap: str = "oxford"
    ranges: CrystalRanges = CrystalRanges()
    dark: str | int | float | None = None
    targets: tuple[str, ...] | None = None
    grid: Literal["paper"] | None = None
    formation: FormationConfig = FormationConfig()
    imaging: ImagingConfig = ImagingConfig(shape=(160, 112))


@dataclass(frozen=True)
class CrystalView:
    """How an image becomes the network's input (``CrystalTask.view``, not in the manifest):
    the crop to the crystal on ``input_scale`` x the frame (None: the whole frame), and
    whether the crystal's box is zoomed onto it."""

    input_scale: float | None = 0.8
    zoom: bool = False

    def __post_init__(self) -> None:
        if self.input_scale is not None and not 0.1 <= float(self.input_scale) <= 4.0:
            raise ValueError(f"input_scale must lie in [0.1, 4] or be None, "
                             f"got {self.input_scale!r}")


class CrystalTask(Task):
    name = "crystal"
    title = "Ion Coulomb-crystal images"
    paper = "Allsopp et al., J. Chem. Phys. 163, 044201 (2025)"
    infers = "number of laser-cooled Ca+ ions (optionally dark ions, temperature)"
    observable = "image"
    model = ModelSpec("resnet18", {"base_width": 32, "stem": "imagenet"})
    # the trap is symmetric under x -> -x and z -> -z (pseudopotential, Coulomb energy and
    # micromotion alike), so a mirrored image is an equally likely crystal with the same N
    input_flips = ((-1,), (-2,), (-2, -1))
    #: a camera frame or region of at least 24 px a side; stacks are image sequences
    accepts = InputSpec(min_px=24, aspect=(0.2, 5.0))
    #: the live page follows the Ca+ number: reactions with a background gas deplete it
    #: exponentially (pseudo-first order), and the page fits the rate constant
    live_trend = ("n_ca", "exponential_decay")

    def __init__(self, trap: str = "oxford", n_ca: tuple[int, int] = (30, 350),
                 v_rf: tuple[float, float] = (170.0, 300.0),
                 v_end: tuple[float, float] = (1.5, 3.5),
                 eta: tuple[float, float] = (0.240, 0.355),
                 temperature_mk: tuple[float, float] = (2.0, 20.0),
                 dark: str | None = None, n_dark: tuple[int, int] = (0, 100),
                 targets: tuple[str, ...] | None = None,
                 formation: FormationConfig | None = None,
                 imaging: ImagingConfig | None = None, grid: str | None = None,
                 input_scale: float | None = 0.8, zoom: bool = False) -> None:
        self.trap = get_trap(trap).name
        self.ranges = {"n_ca": tuple(int(v) for v in n_ca), "v_rf": tuple(map(float, v_rf)),
                       "v_end": tuple(map(float, v_end)), "eta": tuple(map(float, eta)),
                       "temperature_mk": tuple(map(float, temperature_mk)),
                       "n_dark": tuple(int(v) for v in n_dark)}
        self.dark = get_species(dark).name if isinstance(dark, str) else (
            None if dark is None else get_species(dark).name)
        self._dark_key = dark
        self.formation = formation or FormationConfig()
        self.imaging = imaging or ImagingConfig(shape=(160, 112))
        # the network's input: the crop to the crystal on input_scale x the frame (rounded
        # to multiples of 8 px), or the whole frame when None. A reading setting, not a
        # simulation one: it is not part of config() and stored data do not depend on it.
        # zoom: the crystal's box fills the input (True), or the input is a window of the
        # frame at its own 4 um/px centred on the crystal, so sizes in um are kept (False, the
        # default: 2.92% in an hour on 48k crystals against 3.20% zoomed on 24k, and it keeps
        # the size cue that flags out-of-range trap voltages and light dark ions)
        self.view = CrystalView(None if input_scale is None else float(input_scale), bool(zoom))
        self.input_scale, self.zoom = self.view.input_scale, self.view.zoom
        r = self.ranges
        params = [
            Scalar("n_ca", "ions", *r["n_ca"], step=10, integer=True,
                   doc="number of laser-cooled (fluorescing) Ca+ ions"),
            Scalar("v_rf", "V", *r["v_rf"], step=10.0, doc="RF peak-to-peak amplitude V"),
            Scalar("v_end", "V", *r["v_end"], step=0.1, doc="endcap voltage U"),
            Scalar("eta", "", *r["eta"], step=0.005, doc="geometric factor kappa of a_z"),
            Scalar("temperature_mk", "mK", *r["temperature_mk"],
                   doc="secular temperature of the crystal"),
        ]
        if dark is not None:
            params.append(Scalar("n_dark", "ions", *r["n_dark"], step=10, integer=True,
                                 doc=f"number of sympathetically cooled {self.dark} ions"))
        self.space = ParameterSpace(tuple(params))
        if grid not in (None, "paper"):
            raise ValueError(f"grid must be None or 'paper', got {grid!r}")
        self.grid = grid
        if grid == "paper":
            self.space = self.paper_grid()
        default_targets = ("n_ca", "n_dark") if dark is not None else ("n_ca",)
        self.target_names = tuple(targets or default_targets)
        # counts are log-encoded: the loss weighs relative errors (the paper's figure of
        # merit is the RMS percentage error) and the intervals are relative
        self.targets = LinearTargets(self.space, self.target_names,
                                     log=tuple(n for n in self.target_names
                                               if n == "n_ca" or n == "temperature_mk"))
        self.settings = CrystalSettings(self.trap, CrystalRanges(**self.ranges), dark,
                                        self.target_names, grid, self.formation, self.imaging)

    # -- configuration --------------------------------------------------------------------
    def with_config(self, **overrides) -> CrystalTask:
        """As :meth:`Task.with_config`; a new ``dark`` without ``targets`` re-derives the
        targets (n_dark joins them)."""
        if "dark" in overrides and "targets" not in overrides:
            overrides["targets"] = None
        return super().with_config(**overrides)

    def from_settings(self, settings: CrystalSettings, view: CrystalView) -> CrystalTask:
        return CrystalTask(trap=settings.trap, dark=settings.dark, targets=settings.targets,
                           formation=settings.formation, imaging=settings.imaging,
                           grid=settings.grid, input_scale=view.input_scale, zoom=view.zoom,
                           **asdict(settings.ranges))

    def paper_grid(self) -> ParameterSpace:
        """The paper's training grid (Sec. II A) at the default temperature, x 3 replicas:
        33 x 14 x 21 x 24 x 3 = 698 544 crystals. ``retroscope simulate crystal --sampling grid
        --config '{"grid": "paper"}'`` simulates it (with dark ions: their grid too)."""
        params = [p for p in self.space.parameters
                  if p.name not in ("temperature_mk", "replica")]
        params.append(Scalar("replica", "", 0, 2, step=1, integer=True,
                             doc="independent random start (the paper's 3 seeds)"))
        return ParameterSpace(tuple(params))

    # -- physics --------------------------------------------------------------------------
    def operating_point(self, v_rf: float, v_end: float, eta: float) -> OperatingPoint:
        return OperatingPoint(get_trap(self.trap), float(v_rf), float(v_end), float(eta))

    def simulate(self, params, rng) -> dict[str, np.ndarray]:
        n = len(np.asarray(params["n_ca"]))
        temp = np.asarray(params.get("temperature_mk", np.full(n, DEFAULT_TEMPERATURE_MK)),
                          dtype=np.float64)
        n_dark = np.asarray(params.get("n_dark", np.zeros(n)), dtype=np.int64)
        images = np.empty((n, *self.imaging.shape), dtype=np.float16)
        extent = np.empty((n, 2), dtype=np.float32)
        ops, comps = [], []
        for i in range(n):
            ops.append(self.operating_point(params["v_rf"][i], params["v_end"][i],
                                            params["eta"][i]))
            comp = {"Ca+": int(params["n_ca"][i])}
            if self.dark is not None and n_dark[i] > 0:
                comp[self._dark_key] = int(n_dark[i])
            comps.append(comp)
        if self.formation.backend == "numba":  # one at a time: nothing held in memory
            crystals = (form_crystal(op, comp, t * 1e-3, rng, self.formation)
                        for op, comp, t in zip(ops, comps, temp))
        else:
            crystals = form_crystals(ops, comps, list(temp * 1e-3), rng, self.formation)
        for i, crystal in enumerate(crystals):
            images[i] = render(crystal, self.imaging)
            lit = crystal.equilibrium_um[crystal.fluorescing]
            extent[i] = (np.ptp(lit[:, 2]), np.ptp(lit[:, 0]))
        return {"image": images, "extent_um": extent}

    def network_input(self, observable: np.ndarray) -> np.ndarray:
        return brightness_normalise(observable)[None]

    @property
    def input_shape(self) -> tuple[int, int]:
        """(rows, cols) of the network's input."""
        if self.input_scale is None:
            return tuple(self.imaging.shape)
        return tuple(max(8, 8 * round(self.input_scale * s / 8)) for s in self.imaging.shape)

    def network_view(self, x: np.ndarray) -> np.ndarray:
        """The automatic crop to the crystal (:func:`.crop.crop_to_crystal`), found in the
        image as the camera gives it, then brightness normalisation."""
        if self.input_scale is None:
            return x
        from retroscope.tasks.crystal.crop import crop_to_crystal

        frame = np.asarray(x, dtype=np.float32)
        frame = frame[0] if frame.ndim == 3 else frame
        crop, _ = crop_to_crystal(frame, self.input_shape, zoom=None if self.zoom else 1.0)
        return brightness_normalise(crop)[None]

    def observe(self, train: bool):
        if not train:
            return None
        from retroscope.tasks.crystal.camera import crystal_augmentation

        return crystal_augmentation(self.imaging.pixel_um)

    # -- experimental files ---------------------------------------------------------------
    def preprocess(self, image: np.ndarray, settings: dict | None = None) -> np.ndarray:
        from retroscope.tasks.crystal.lab import preprocess_lab_image

        return preprocess_lab_image(image, settings or {}, self.imaging)

    def check_settings(self, settings: dict, source: str = "settings") -> dict:
        from retroscope.tasks.crystal.lab_settings import validate_lab_settings

        validate_lab_settings(settings, source)
        return settings

    # -- evaluation -----------------------------------------------------------------------
    def metrics(self, true, pred) -> dict[str, np.ndarray]:
        out = {}
        for name in self.target_names:
            t = np.asarray(true[name], dtype=np.float64)
            p = np.asarray(pred[name], dtype=np.float64)
            out[f"{name}_error"] = p - t
            out[f"{name}_abs_error"] = np.abs(p - t)
            if name.startswith("n_"):
                with np.errstate(divide="ignore", invalid="ignore"):
                    out[f"{name}_error_percent"] = np.where(t > 0, 100 * (p - t) / t, np.nan)
        return out

    def summary_metrics(self, true, pred) -> dict:
        """RMS error and RMS percentage error per count target (the paper's figures of merit,
        Sec. III B) and the Fig. 4 statistics per bin of 10 ions."""
        from retroscope.tasks.crystal.plots import bin_statistics

        out = {}
        for name in self.target_names:
            t = np.asarray(true[name], dtype=np.float64)
            p = np.asarray(pred[name], dtype=np.float64)
            entry = {"rms": float(np.sqrt(np.mean((p - t) ** 2))),
                     "mean_error": float(np.mean(p - t))}
            if name.startswith("n_"):
                ok = t > 0
                entry["rms_percent"] = float(100 * np.sqrt(np.mean(((p[ok] - t[ok]) / t[ok]) ** 2)))
                entry["mean_abs_percent"] = float(100 * np.mean(np.abs(p[ok] - t[ok]) / t[ok]))
                entry["exact_fraction"] = float(np.mean(np.round(p) == t))
                entry["per_bin"] = bin_statistics(t, p)["bins"]
                if "temperature_mk" in true:  # hotter crystals blur more: where the error sits
                    entry["rms_percent_by_temperature"] = _by_temperature(
                        np.asarray(true["temperature_mk"], dtype=np.float64), t, p,
                        self.ranges["temperature_mk"])
            out[name] = entry
        return out

    def plots(self, true, pred, out_dir, metrics, reference=None) -> list:
        from retroscope.tasks.crystal.plots import count_by_bin

        return [count_by_bin(np.asarray(true[n]), np.asarray(pred[n]),
                             Path(out_dir) / f"{n}_by_bin.png", label=n,
                             unit=self.space[n].unit)
                for n in self.target_names if n.startswith("n_")]

    def baseline(self, **kwargs):
        from retroscope.tasks.crystal.baseline import ImageMatching

        return ImageMatching(self, **kwargs)

    def describe_prediction(self, row: dict) -> dict:
        return {k: int(round(float(v))) for k, v in row.items() if k.startswith("n_")}

    def describe_truth(self, row: dict) -> dict:
        out = {k: int(row[k]) for k in ("n_ca", "n_dark") if k in row}
        out.update({k: round(float(row[k]), 3) for k in ("v_rf", "v_end", "eta",
                                                          "temperature_mk") if k in row})
        return out

    # -- demo -----------------------------------------------------------------------------
    def demo_settings(self) -> DemoSettings:
        return DemoSettings(n=1200, shard_size=50, epochs=12, train_minutes=3.0,
                            train={"batch_size": 32, "lr": 2e-3}, baseline_n=2,
                            baseline_kwargs={"steps": [32, 8, 2]},
                            full_scale="48 000 crystals and 54 min of training on 2 CPU cores "
                            "(README, Performance) reach an RMS error of 2.92% (5.0 ions) "
                            "on 6 822 test crystals")

    def demo_preprocess_settings(self) -> dict:
        return {"pixel_um": self.imaging.pixel_um}

    def small(self) -> CrystalTask:
        """Small images and short dynamics for fast tests."""
        return self.with_config(shape=(48, 40), pixel_um=10.0, n_snapshots=4,
                                sample_periods=2.0, equilibrate_periods=1.0,
                                micromotion_phases=2, n_ca=(10, 60))


def _by_temperature(temp_mk, true, pred, span, parts: int = 3) -> list[dict]:
    """RMS percentage error of a count in ``parts`` equal slices of the temperature range."""
    edges = np.linspace(span[0], span[1], parts + 1)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (temp_mk >= lo) & ((temp_mk < hi) | (hi == edges[-1])) & (true > 0)
        if sel.any():
            rel = (pred[sel] - true[sel]) / true[sel]
            rows.append({"temperature_mk": [float(lo), float(hi)], "n": int(sel.sum()),
                         "rms_percent": float(100 * np.sqrt(np.mean(rel ** 2)))})
    return rows

