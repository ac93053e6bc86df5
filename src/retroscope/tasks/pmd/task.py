"""The ``pmd`` task: the internuclear distance of H2+ (and the peak intensity) from one
photoelectron momentum map of strong-field ionisation, after Shvetsov-Shilovski & Lein,
PRA 107, 033106 (2023).

Stored per sample: the momentum map ``pmd`` (256 x 128 on k_x in [-4, 4), k_y in [-2, 2) a.u.,
probability per a.u.^2; :mod:`.maps`), its ionisation ``yield_`` and dP/dk_x. The network sees
Sec. II A's image: W = log10(PMD / max), floored at -5 decades and scaled to [0, 1]; the
maximum leaves out |k| < 0.1 a.u., where slow electrons and bound-state tails pile up.

How the stored map becomes the network's input is the task's view (:class:`PmdView`, recorded
in a run, not in the data): the whole map on the fixed k window (default) or the paper's crop
to the rectangle where W > -5, resampled bicubically to 256 x 128 (``crop="paper"``); the
first quadrant only (``quadrant=True``, 128 x 64, Sec. VI's classifier); or the 1D
distribution along the polarisation dP/dk_x (``input="dp_dkx"``, Sec. III, 256 points,
scaled like the map).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from retroscope.core.params import ParameterSpace, Scalar
from retroscope.core.targets import BinnedTargets, LinearTargets
from retroscope.core.task import DemoSettings, InputSpec, ModelSpec, Task
from retroscope.tasks.pmd.images import (
    k_extent,
    onto_grid,
    outside_low_k,
    paper_crop,
    to_linear,
    unit_log_image,
)
from retroscope.tasks.pmd.maps import KX_AU, KY_AU
from retroscope.tasks.pmd.potentials import MOLECULES
from retroscope.tasks.pmd.presets import PRESETS

#: how a map file's values may be scaled (``preprocess``'s ``scale`` setting)
SCALES = ("linear", "log10", "unit")
#: which array axis of a map file runs along the polarisation, k_x
AXES = ("rows", "columns")
#: the settings a map file may be read with (``check_settings``)
SETTINGS = ("scale", "background", "k_extent_au", "polarization_axis")
#: what the README's full-scale run reaches, printed at the end of the demo
FULL_SCALE = ("MAE_R 0.054 bohr from 2,112 training maps of the demo preset (R 1-8 bohr, "
              "60 epochs; the paper: 0.07 bohr from 2,250)")
#: the stored momentum grid's shape (k_x, k_y)
MAP_SHAPE = (len(KX_AU), len(KY_AU))


@dataclass(frozen=True)
class PmdRanges:
    """The parameter box of a data set: internuclear distance (bohr), peak intensity
    (W/cm^2), carrier-envelope phase (rad) and orientation of the molecular axis to the
    polarisation (deg). A range whose ends are equal fixes the parameter (the paper's base
    set: CEP 0, alpha 0)."""

    r_bohr: tuple[float, float] = (1.0, 8.0)
    intensity_w_cm2: tuple[float, float] = (1e14, 4e14)
    cep_rad: tuple[float, float] = (0.0, 0.0)
    alpha_deg: tuple[float, float] = (0.0, 0.0)


#: what the network may read (PmdView.input) and how the map is framed (PmdView.crop)
INPUTS = ("pmd", "dp_dkx")
CROPS = ("fixed", "paper")


@dataclass(frozen=True)
class PmdView:
    """How a stored map becomes the network's input (see the module docstring)."""

    input: str = "pmd"
    crop: str = "fixed"
    quadrant: bool = False
    #: False: R and I with intervals (regression); True: R in classes of 1 bohr (Sec. VI)
    classify_r: bool = False

    def __post_init__(self) -> None:
        if self.input not in INPUTS:
            raise ValueError(f"input must be one of {INPUTS}, got {self.input!r}")
        if self.crop not in CROPS:
            raise ValueError(f"crop must be one of {CROPS}, got {self.crop!r}")
        if self.input == "dp_dkx" and (self.quadrant or self.crop != "fixed"):
            raise ValueError("the 1D input dP/dk_x takes neither crop='paper' nor quadrant")
        if self.quadrant and self.crop != "fixed":
            raise ValueError("quadrant reads the fixed k window; it takes no crop='paper'")


@dataclass(frozen=True)
class PmdSettings:
    """What the stored maps depend on (hashed into the manifest): the molecule, the TDSE's
    numerical preset (:mod:`.presets`), the parameter box and the propagation precision."""

    molecule: str = "H2+"
    preset: str = "fast"
    ranges: PmdRanges = field(default_factory=PmdRanges)
    precision: str = "complex64"
    #: 0: maps at the peak intensity; n >= 2: focal-volume averaged over n intensities up to
    #: the peak (Eqs. 5-6, :mod:`.focal`; n times the cost)
    focal_points: int = 0

    def __post_init__(self) -> None:
        if self.molecule not in MOLECULES:
            raise ValueError(f"molecule must be one of {MOLECULES}, got {self.molecule!r}")
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        if self.focal_points == 1 or self.focal_points < 0:
            raise ValueError(f"focal_points must be 0 (no averaging) or >= 2, got "
                             f"{self.focal_points}")


class PmdTask(Task):
    name = "pmd"
    title = "Photoelectron momentum maps of H2+ in a few-cycle pulse"
    paper = "Shvetsov-Shilovski & Lein, PRA 107, 033106 (2023)"
    infers = "internuclear distance (bohr) and peak intensity (W/cm^2) of a 2D H2+ model"
    observable = "pmd"
    #: a map with k_x (the polarisation) along the rows, about twice as long as it is wide
    accepts = InputSpec(min_px=32, aspect=(1.5, 2.5), scale_setting="scale",
                        scale_choices=SCALES)
    headline_columns = ("r_bohr", "intensity_w_cm2")
    input_label = "log10 of the map over its maximum, scaled to [0, 1]"

    def __init__(self, settings: PmdSettings | None = None, view: PmdView | None = None) -> None:
        self.settings = settings or PmdSettings()
        self.view = view or PmdView()
        self.observable = self.view.input
        size = ([len(KX_AU)] if self.view.input == "dp_dkx" else
                [MAP_SHAPE[0] // 2, MAP_SHAPE[1] // 2] if self.view.quadrant else list(MAP_SHAPE))
        self.model = ModelSpec("plain_cnn", {"input_size": size, "width": 32, "n_blocks": 5,
                                             "dropout": 0.2, "dims": len(size)})
        r = self.settings.ranges
        self.space = ParameterSpace((
            Scalar("r_bohr", "bohr", *r.r_bohr, doc="internuclear distance"),
            Scalar("intensity_w_cm2", "W/cm^2", *r.intensity_w_cm2, doc="peak intensity"),
            Scalar("cep_rad", "rad", *r.cep_rad, doc="carrier-envelope phase"),
            Scalar("alpha_deg", "deg", *r.alpha_deg,
                   doc="angle of the molecular axis to the polarisation"),
        ))
        if self.view.classify_r:
            # Sec. VI: seven classes 1 <= R < 2, ..., 7 <= R <= 8 bohr on the base range
            edges = np.arange(np.ceil(r.r_bohr[0]), np.floor(r.r_bohr[1]) + 1.0)
            if len(edges) < 3:
                raise ValueError(f"classes of 1 bohr need an R range of at least 2 bohr, got "
                                 f"{r.r_bohr}")
            self.learner = "classification"
            self.targets = BinnedTargets(self.space, "r_bohr", edges)
        else:
            self.targets = LinearTargets(self.space, columns=("r_bohr", "intensity_w_cm2"),
                                         nonnegative=("r_bohr", "intensity_w_cm2"))
        # the molecule's mirror plane (y -> -y) is a symmetry of the map only at alpha = 0
        mirror = r.alpha_deg == (0.0, 0.0) and self.view.input == "pmd" \
            and not self.view.quadrant
        self.input_flips = ((-1,),) if mirror else ()

    # -- configuration --------------------------------------------------------------------
    def from_settings(self, settings: PmdSettings, view=None) -> PmdTask:
        return PmdTask(settings, view)

    # -- physics --------------------------------------------------------------------------
    def simulate(self, params, rng) -> dict[str, np.ndarray]:
        """Momentum maps of the rows of ``params`` by the mask method on the preset's grid,
        batched, one torch thread (small FFTs do not scale; campaigns use a process per
        core); with ``focal_points`` each row's map is the focal-volume average of that many
        maps up to its peak intensity. Deterministic: ``rng`` is unused."""
        import torch

        from retroscope.tasks.pmd.focal import focal_average, focal_intensities, focal_weights
        from retroscope.tasks.pmd.maps import momentum_maps

        s = self.settings
        peak = np.asarray(params["intensity_w_cm2"], dtype=np.float64)
        k = max(s.focal_points, 1)
        if s.focal_points:
            intensity = np.concatenate([focal_intensities(p, k) for p in peak])
        else:
            intensity = peak
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            r, cep, alpha = (np.repeat(np.asarray(params[c]), k)
                             for c in ("r_bohr", "cep_rad", "alpha_deg"))
            maps = momentum_maps(r, intensity, cep, alpha, s.molecule, s.preset,
                                 precision=s.precision)
        finally:
            torch.set_num_threads(threads)
        pmd, yields = maps["pmd"], maps["yield_"].astype(np.float64)
        if s.focal_points:
            groups = [slice(i * k, (i + 1) * k) for i in range(len(peak))]
            pmd = np.stack([focal_average(pmd[g], intensity[g], p)
                            for g, p in zip(groups, peak)]).astype(np.float32)
            yields = np.array([np.dot(focal_weights(intensity[g], p), yields[g])
                               / focal_weights(intensity[g], p).sum()
                               for g, p in zip(groups, peak)])
        dky = KY_AU[1] - KY_AU[0]
        return {"pmd": pmd, "yield_": yields, "dp_dkx": (pmd.sum(axis=2) * dky).astype(np.float32)}

    def network_input(self, observable: np.ndarray) -> np.ndarray:
        """Sec. II A: W = log10(PMD / max over |k| >= 0.1 a.u.), floored at -5, scaled to
        [0, 1], one channel: on the fixed window (256 x 128), the paper's crop to W > -5
        resampled bicubically to 256 x 128, or the first quadrant (128 x 64); for the 1D view
        the same scaling of dP/dk_x (1 x 256)."""
        a = np.asarray(observable, dtype=np.float64)
        if self.view.input == "dp_dkx":
            return unit_log_image(a, float(a.max()))[None]
        peak = float(a[outside_low_k()].max()) if a.shape == MAP_SHAPE else a.max()
        x = unit_log_image(a, peak)
        if self.view.crop == "paper":
            x = paper_crop(x)
        elif self.view.quadrant:
            x = x[x.shape[0] // 2:, x.shape[1] // 2:]
        return x[None]

    # -- experimental files ---------------------------------------------------------------
    def check_settings(self, settings: dict, source: str = "settings") -> dict:
        unknown = sorted(set(settings) - set(SETTINGS))
        if unknown:
            raise ValueError(f"{source}: unknown pmd settings {unknown}; known: "
                             f"{sorted(SETTINGS)}")
        if "scale" in settings and settings["scale"] not in SCALES:
            raise ValueError(f"{source}: scale must be one of {SCALES}, got "
                             f"{settings['scale']!r}")
        background = settings.get("background", 0.0)
        if isinstance(background, bool) or not isinstance(background, (int, float)):
            raise ValueError(f"{source}: background must be a number, got {background!r}")
        axis = settings.get("polarization_axis", "rows")
        if axis not in AXES:
            raise ValueError(f"{source}: polarization_axis must be one of {AXES}, got "
                             f"{axis!r}")
        if "k_extent_au" in settings:
            k_extent(settings["k_extent_au"], 1 if self.view.input == "dp_dkx" else 2, source)
        return settings

    def accepts_for(self, settings: dict | None) -> InputSpec:
        """A map whose k extent is stated may have any aspect; one with k_x along the
        columns is about half as tall as it is wide."""
        s = settings or {}
        if "k_extent_au" in s:
            return replace(self.accepts, aspect=(0.02, 50.0))
        if s.get("polarization_axis") == "columns":
            lo, hi = self.accepts.aspect
            return replace(self.accepts, aspect=(1 / hi, 1 / lo))
        return self.accepts

    def read_experimental(self, paths, settings: dict | None = None):
        """Maps as any task reads them; a 1D run (``input="dp_dkx"``) reads curves from NPY
        or HDF5 (``file.h5::/path``) itself (the image readers take 2D frames only), and
        integrates a 2D map over k_y."""
        if self.view.input != "dp_dkx":
            return super().read_experimental(paths, settings)
        from retroscope.io.readers import ReadError, read_array

        items, failures = [], []
        for path in paths:
            try:
                own = self.check_settings(dict(settings or {}), source=str(path))
                items.append((str(path), str(path), self.preprocess(read_array(path), own), {}))
            except (ReadError, ValueError) as exc:
                failures.append((str(path), str(exc)))
        return items, failures

    def preprocess(self, image: np.ndarray, settings: dict | None = None) -> np.ndarray:
        """A measured or computed map -> the stored form (256 x 128, linear probability per
        a.u.^2 on k_x in [-4, 4), k_y in [-2, 2) a.u.); for a 1D run, dP/dk_x (256 points).

        Rows run along k_x (the polarisation) unless ``polarization_axis = "columns"``.
        ``k_extent_au`` = [[kx_min, kx_max], [ky_min, ky_max]] (1D: [kx_min, kx_max]) states
        the momenta the file's first and last pixel edges stand for; the map is then
        interpolated (linearly) onto the stored grid, zero outside what it covers. Without it
        the file is taken to cover the stored window and another size is resampled
        bicubically onto it. ``scale``: "linear" (counts or probability, the default;
        ``background`` counts are subtracted and negative values refused), "log10" (log10 of
        the map) or "unit" (the network's [0, 1] image of Sec. II A, as retroscope writes
        PNG/CXI)."""
        s = self.check_settings(dict(settings or {}))
        a = np.asarray(image, dtype=np.float64)
        one_d = self.view.input == "dp_dkx"
        if a.ndim == 2 and s.get("polarization_axis", "rows") == "columns":
            a = a.T
        if a.ndim != 2 and not (one_d and a.ndim == 1):
            raise ValueError(f"expected a {'1D curve or ' if one_d else ''}2D momentum map, "
                             f"got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError("the map contains NaN or infinite values")
        if np.ptp(a) == 0:
            raise ValueError("the map is constant")
        a = to_linear(a, s)
        if one_d and a.ndim == 2:
            extent = s.get("k_extent_au")
            width = (extent[1][1] - extent[1][0]) / a.shape[1] if extent else KY_AU[1] - KY_AU[0]
            a, s = a.sum(axis=1) * width, {**s, "k_extent_au": extent[0] if extent else None}
        grid = (KX_AU,) if a.ndim == 1 else (KX_AU, KY_AU)
        if s.get("k_extent_au") is not None:
            a = onto_grid(a, k_extent(s["k_extent_au"], a.ndim, "settings"), grid)
        elif a.shape != tuple(len(g) for g in grid):
            from scipy.ndimage import zoom

            a = zoom(a, [len(g) / n for g, n in zip(grid, a.shape)], order=3)
        return np.clip(a, 0.0, None).astype(np.float32)

    # -- evaluation -----------------------------------------------------------------------
    def baseline(self, method: str = "dc_mse", **kwargs):
        """A classical alternative of Sec. V (``evaluate --baseline N``): direct comparison
        with the training maps by MSE (``dc_mse``, the default) or by dense SIFT
        (``dc_sift``), SVM or a decision tree on HOG features (``svm_hog``, ``dt_hog``),
        SVM on dense SIFT (``svm_sift``)."""
        from retroscope.tasks.pmd.baselines import ALTERNATIVES

        if method not in ALTERNATIVES:
            raise ValueError(f"unknown pmd alternative {method!r}; known: {sorted(ALTERNATIVES)}")
        return ALTERNATIVES[method](self, **kwargs)

    def metrics(self, true, pred) -> dict[str, np.ndarray]:
        """Absolute errors of R (bohr) and I (in 1e14 W/cm^2, the paper's MAE_I unit)."""
        return {"r_abs_error_bohr": np.abs(np.asarray(pred["r_bohr"], dtype=np.float64)
                                           - np.asarray(true["r_bohr"], dtype=np.float64)),
                "intensity_abs_error_1e14_w_cm2": np.abs(
                    np.asarray(pred["intensity_w_cm2"], dtype=np.float64)
                    - np.asarray(true["intensity_w_cm2"], dtype=np.float64)) / 1e14}

    def training_defaults(self) -> dict:
        """The paper's mini-batches of 30 maps (Sec. II A): a training set of a few hundred
        maps gives ten or more optimiser steps per epoch."""
        return {"batch_size": 30}

    def recipes(self) -> dict[str, dict]:
        """``paper``: Sec. II A's training (MATLAB's sgdm: SGD with momentum 0.9 and its
        default L2 factor 1e-4, mini-batches of 30, rate 1e-3 divided by 10 after epoch 20,
        30 epochs)."""
        return {"paper": {"optimizer": "sgd", "momentum": 0.9, "weight_decay": 1e-4,
                          "batch_size": 30, "lr": 1e-3, "step_size": 20, "decay": 0.1,
                          "epochs": 30}}

    # -- demo -----------------------------------------------------------------------------
    def demo_settings(self) -> DemoSettings:
        """280 maps on the demo preset (R 1-6 bohr, 1-2e14 W/cm^2), 2 minutes of training, the
        direct comparison with the training maps on 20 test maps, predictions on NPY, HDF5
        and PNG files and a bad one, and the occlusion map of the first file."""
        return DemoSettings(n=280, shard_size=10, epochs=60, train_minutes=2.0,
                            train={"batch_size": 16, "lr": 2e-3}, baseline_n=20,
                            task_config={"preset": "demo", "r_bohr": [1.0, 6.0],
                                         "intensity_w_cm2": [1e14, 2e14]},
                            explain="occlusion", full_scale=FULL_SCALE)

    def demo_preprocess_settings(self) -> dict:
        return {"scale": "unit"}

    def describe_truth(self, row: dict) -> dict:
        """R (bohr) and I (1e14 W/cm^2), and CEP and orientation where they vary."""
        out = {"r_bohr": round(float(row["r_bohr"]), 3),
               "I_1e14": round(float(row["intensity_w_cm2"]) / 1e14, 3)}
        r = self.settings.ranges
        if r.cep_rad[0] != r.cep_rad[1]:
            out["cep_rad"] = round(float(row["cep_rad"]), 2)
        if r.alpha_deg[0] != r.alpha_deg[1]:
            out["alpha_deg"] = round(float(row["alpha_deg"]), 1)
        return out

    def demo_files(self, test, files_dir, n: int):
        """Test maps as a lab or a TDSE code would hand them over: a linear map in NPY, one in
        an HDF5 dataset (``maps.h5::/maps/map_1``), the paper's [0, 1] image in a PNG that
        records its scale; and one bad file (a map with NaNs) that must be refused by name
        while the others are read."""
        import h5py

        from retroscope.io.readers import write_png

        files_dir = Path(files_dir)
        maps = [np.asarray(test.observable(i), dtype=np.float32) for i in range(3)]
        truth = [self.describe_truth({k: v[i] for k, v in test.params.items()})
                 for i in range(3)]
        np.save(files_dir / "map_0.npy", maps[0])
        with h5py.File(files_dir / "maps.h5", "w") as f:
            f.create_dataset("maps/map_1", data=maps[1])
        write_png(files_dir / "map_2.png", self.network_input(maps[2])[0],
                  self.demo_preprocess_settings())
        bad = maps[0].copy()
        bad[100:110, 60:70] = np.nan
        np.save(files_dir / "bad_map.npy", bad)
        return [files_dir / "map_0.npy", Path(f"{files_dir / 'maps.h5'}::/maps/map_1"),
                files_dir / "map_2.png", files_dir / "bad_map.npy"], truth
