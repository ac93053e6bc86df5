"""The ``pmd`` task: the internuclear distance of H2+ (and the peak intensity) from one
photoelectron momentum map of strong-field ionisation, after Shvetsov-Shilovski & Lein,
PRA 107, 033106 (2023).

Stored per sample: the momentum map ``pmd`` (256 x 128 on k_x in [-4, 4), k_y in [-2, 2) a.u.,
probability per a.u.^2; :mod:`.maps`), its ionisation ``yield_`` and dP/dk_x. The network sees
Sec. II A's image: W = log10(PMD / max), floored at -5 decades and scaled to [0, 1]; the
maximum leaves out |k| < 0.1 a.u., where slow electrons and bound-state tails pile up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from retroscope.core.params import ParameterSpace, Scalar
from retroscope.core.targets import LinearTargets
from retroscope.core.task import DemoSettings, InputSpec, ModelSpec, Task
from retroscope.tasks.pmd.maps import KX_AU, KY_AU, LOW_K_AU
from retroscope.tasks.pmd.potentials import MOLECULES
from retroscope.tasks.pmd.presets import PRESETS

#: decades below the maximum that the network sees (Sec. II A: W = -5 for all smaller values)
FLOOR_DECADES = 5.0
#: how a map file's values may be scaled (``preprocess``'s ``scale`` setting)
SCALES = ("linear", "log10", "unit")
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


@dataclass(frozen=True)
class PmdSettings:
    """What the stored maps depend on (hashed into the manifest): the molecule, the TDSE's
    numerical preset (:mod:`.presets`), the parameter box and the propagation precision."""

    molecule: str = "H2+"
    preset: str = "fast"
    ranges: PmdRanges = field(default_factory=PmdRanges)
    precision: str = "complex64"

    def __post_init__(self) -> None:
        if self.molecule not in MOLECULES:
            raise ValueError(f"molecule must be one of {MOLECULES}, got {self.molecule!r}")
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {self.preset!r}")


class PmdTask(Task):
    name = "pmd"
    title = "Photoelectron momentum maps of H2+ in a few-cycle pulse"
    paper = "Shvetsov-Shilovski & Lein, PRA 107, 033106 (2023)"
    infers = "internuclear distance (bohr) and peak intensity (W/cm^2) of a 2D H2+ model"
    observable = "pmd"
    model = ModelSpec("plain_cnn", {"input_size": [256, 128], "width": 32, "n_blocks": 5,
                                    "dropout": 0.2})
    #: a map with k_x (the polarisation) along the rows, about twice as long as it is wide
    accepts = InputSpec(min_px=32, aspect=(1.5, 2.5), scale_setting="scale",
                        scale_choices=SCALES)
    headline_columns = ("r_bohr", "intensity_w_cm2")
    input_label = "log10 of the map over its maximum, scaled to [0, 1]"

    def __init__(self, settings: PmdSettings | None = None) -> None:
        self.settings = settings or PmdSettings()
        r = self.settings.ranges
        self.space = ParameterSpace((
            Scalar("r_bohr", "bohr", *r.r_bohr, doc="internuclear distance"),
            Scalar("intensity_w_cm2", "W/cm^2", *r.intensity_w_cm2, doc="peak intensity"),
            Scalar("cep_rad", "rad", *r.cep_rad, doc="carrier-envelope phase"),
            Scalar("alpha_deg", "deg", *r.alpha_deg,
                   doc="angle of the molecular axis to the polarisation"),
        ))
        self.targets = LinearTargets(self.space, columns=("r_bohr", "intensity_w_cm2"))
        # the molecule's mirror plane (y -> -y) is a symmetry of the map only at alpha = 0
        self.input_flips = ((-1,),) if r.alpha_deg == (0.0, 0.0) else ()

    # -- configuration --------------------------------------------------------------------
    def from_settings(self, settings: PmdSettings, view=None) -> PmdTask:
        return PmdTask(settings)

    # -- physics --------------------------------------------------------------------------
    def simulate(self, params, rng) -> dict[str, np.ndarray]:
        """Momentum maps of the rows of ``params`` by the mask method on the preset's grid,
        batched, one torch thread (small FFTs do not scale; campaigns use a process per
        core). Deterministic: ``rng`` is unused."""
        import torch

        from retroscope.tasks.pmd.maps import momentum_maps

        s = self.settings
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            maps = momentum_maps(params["r_bohr"], params["intensity_w_cm2"],
                                 params["cep_rad"], params["alpha_deg"], s.molecule, s.preset,
                                 precision=s.precision)
        finally:
            torch.set_num_threads(threads)
        return {"pmd": maps["pmd"], "yield_": maps["yield_"].astype(np.float64),
                "dp_dkx": maps["dp_dkx"].astype(np.float32)}

    def network_input(self, observable: np.ndarray) -> np.ndarray:
        """Sec. II A: W = log10(PMD / max over |k| >= 0.1 a.u.), floored at -5, scaled to
        [0, 1] (one channel, 256 x 128)."""
        pmd = np.asarray(observable, dtype=np.float64)
        peak = float(pmd[_outside_low_k()].max()) if pmd.shape == MAP_SHAPE else pmd.max()
        if not peak > 0:
            return np.zeros((1, *pmd.shape), dtype=np.float32)
        with np.errstate(divide="ignore"):
            w = np.log10(np.clip(pmd / peak, 0.0, None))
        x = np.clip(w / FLOOR_DECADES + 1.0, 0.0, 1.0)
        return x[None].astype(np.float32)

    # -- experimental files ---------------------------------------------------------------
    def check_settings(self, settings: dict, source: str = "settings") -> dict:
        unknown = sorted(set(settings) - {"scale", "background"})
        if unknown:
            raise ValueError(f"{source}: unknown pmd settings {unknown}; known: "
                             f"['background', 'scale']")
        if "scale" in settings and settings["scale"] not in SCALES:
            raise ValueError(f"{source}: scale must be one of {SCALES}, got "
                             f"{settings['scale']!r}")
        background = settings.get("background", 0.0)
        if isinstance(background, bool) or not isinstance(background, (int, float)):
            raise ValueError(f"{source}: background must be a number, got {background!r}")
        return settings

    def preprocess(self, image: np.ndarray, settings: dict | None = None) -> np.ndarray:
        """A measured or computed map -> the stored form (256 x 128, linear probability).

        Rows run along k_x (the polarisation), columns along k_y, covering the stored window
        (k_x in [-4, 4), k_y in [-2, 2) a.u.); another size is resampled bicubically onto it.
        ``scale``: "linear" (counts or probability, the default; ``background`` counts are
        subtracted and negative values refused), "log10" (log10 of the map) or "unit" (the
        network's [0, 1] image of Sec. II A, as retroscope writes PNG/CXI)."""
        from scipy.ndimage import zoom

        s = self.check_settings(dict(settings or {}))
        a = np.asarray(image, dtype=np.float64)
        if a.ndim != 2:
            raise ValueError(f"expected a 2D momentum map, got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError("the map contains NaN or infinite values")
        if np.ptp(a) == 0:
            raise ValueError("the map is constant")
        scale = s.get("scale", "linear")
        if scale == "linear":
            a = a - float(s.get("background", 0.0))
            if a.min() < -1e-12 * abs(a).max():
                raise ValueError(f"negative values in a linear map (min {a.min():.3g}); "
                                 f"set background or the right scale")
            a = np.clip(a, 0.0, None)
        elif scale == "log10":
            a = 10.0 ** (a - a.max())
        else:  # unit: (W + 5) / 5 with W = log10(PMD / max)
            u = (a - a.min()) / np.ptp(a)
            a = np.where(u > 0, 10.0 ** (FLOOR_DECADES * (u - 1.0)), 0.0)
        if a.shape != MAP_SHAPE:
            a = np.clip(zoom(a, (MAP_SHAPE[0] / a.shape[0], MAP_SHAPE[1] / a.shape[1]),
                             order=3), 0.0, None)
        return a.astype(np.float32)

    # -- evaluation -----------------------------------------------------------------------
    def baseline(self, **kwargs):
        """Direct comparison with the training maps (DC+MSE, Sec. V)."""
        from retroscope.tasks.pmd.baselines import DirectComparison

        return DirectComparison(self, **kwargs)

    def metrics(self, true, pred) -> dict[str, np.ndarray]:
        """Absolute errors of R (bohr) and I (in 1e14 W/cm^2, the paper's MAE_I unit)."""
        return {"r_abs_error_bohr": np.abs(np.asarray(pred["r_bohr"], dtype=np.float64)
                                           - np.asarray(true["r_bohr"], dtype=np.float64)),
                "intensity_abs_error_1e14_w_cm2": np.abs(
                    np.asarray(pred["intensity_w_cm2"], dtype=np.float64)
                    - np.asarray(true["intensity_w_cm2"], dtype=np.float64)) / 1e14}

    def recipes(self) -> dict[str, dict]:
        """``paper``: Sec. II A's training (MATLAB's sgdm: SGD with momentum 0.9 and its
        default L2 factor 1e-4, mini-batches of 30, rate 1e-3 divided by 10 after epoch 20,
        30 epochs)."""
        return {"paper": {"optimizer": "sgd", "momentum": 0.9, "weight_decay": 1e-4,
                          "batch_size": 30, "lr": 1e-3, "step_size": 20, "decay": 0.1,
                          "epochs": 30}}

    # -- demo -----------------------------------------------------------------------------
    def demo_settings(self) -> DemoSettings:
        """120 maps on the demo preset (R 1-6 bohr, 1-2e14 W/cm^2), 2 minutes of training, the
        direct comparison with the training maps on 20 test maps."""
        return DemoSettings(n=120, shard_size=10, epochs=60, train_minutes=2.0,
                            train={"batch_size": 16, "lr": 2e-3}, baseline_n=20,
                            task_config={"preset": "demo", "r_bohr": [1.0, 6.0],
                                         "intensity_w_cm2": [1e14, 2e14]})

    def demo_preprocess_settings(self) -> dict:
        return {"scale": "unit"}


def _outside_low_k() -> np.ndarray:
    kx, ky = np.meshgrid(KX_AU, KY_AU, indexing="ij")
    return np.hypot(kx, ky) >= LOW_K_AU
