"""The ``diffraction`` task: size and orientation of icosahedral clusters from one
wide-angle XUV scattering pattern (Stielow et al., Mach. Learn.: Sci. Technol. 2020).

Stored per sample: the clean 128 x 128 pattern ``image`` = log10(I / max I) on the q-grid
(MSFT with absorption, :mod:`.msft`), with the circumradius and the orientation quaternion
reduced into the fundamental domain of the icosahedral group. Online (in the DataLoader): the
detector imperfections of App. D (:func:`.augmentation.stielow_augmentation`).
The network sees the log-intensity over ``INPUT_DECADES`` decades scaled to [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from retroscope.core.params import Orientation, ParameterSpace, Scalar
from retroscope.core.task import DemoSettings, InputSpec, ModelSpec, Task
from retroscope.tasks.diffraction import msft, shapes, symmetry
from retroscope.tasks.diffraction.targets import OrientationRadiusTargets, diffraction_errors

INPUT_DECADES = 6.0  # dynamic range shown to the network: a detector sees a few decades
#: how a detector file's values may be scaled (``preprocess``'s ``scale`` setting)
SCALES = ("linear", "log10", "unit")
#: preprocessing settings and what each must be
SETTINGS = {"scale": "one of " + ", ".join(SCALES), "background": "a number (counts)",
            "center_px": "[row, col] in pixels", "half_width_px": "a positive number of pixels"}


@dataclass(frozen=True)
class DiffractionSettings:
    """What the stored patterns depend on (``DiffractionTask.settings``, hashed into the
    manifest): the cluster's shape, its circumradius range (nm) and the MSFT geometry, whose
    fields may also be given flat (``with_config(n_xy=32)``)."""

    shape: str = "icosahedron"
    radius_nm: tuple[float, float] = (30.0, 160.0)
    msft: msft.MSFTConfig = msft.MSFTConfig()


@dataclass(frozen=True)
class DiffractionView:
    """How a stored pattern becomes the network's input (``DiffractionTask.view``, not in the
    manifest): ``input_bin`` x ``input_bin`` detector pixels are averaged into one (1: the
    full q-grid; 2 halves each side, a quarter of the network's arithmetic, the demo's
    choice on a laptop). Binning comes after the detector's imperfections, as on a binned
    camera readout."""

    input_bin: int = 1

    def __post_init__(self) -> None:
        if self.input_bin not in (1, 2, 4):
            raise ValueError(f"input_bin must be 1, 2 or 4, got {self.input_bin!r}")


class DiffractionTask(Task):
    name = "diffraction"
    title = "Wide-angle XUV scattering of nanoclusters"
    paper = "Stielow et al., Mach. Learn.: Sci. Technol. (2020)"
    infers = "circumradius (nm) and orientation (quaternion) of an icosahedral cluster"
    observable = "image"
    model = ModelSpec("resnet18", {"base_width": 32, "stem": "imagenet"})
    #: a detector frame (square-ish, at least 32 px a side); stacks are runs of shots
    #: an 8-bit file must say how it is scaled (a display of a log scale is common)
    accepts = InputSpec(min_px=32, aspect=(0.5, 2.0), scale_setting="scale",
                        scale_choices=SCALES)
    reference_name = "the identity rotation and the mean training radius"
    #: what a person reads first: the size and the rotation angle of the cluster
    headline_columns = ("radius_nm", "rotation_deg")

    def __init__(self, shape: str = "icosahedron", config: msft.MSFTConfig | None = None,
                 radius_nm: tuple[float, float] = (30.0, 160.0), input_bin: int = 1) -> None:
        self.shape = shapes.get_shape(shape).name
        self.msft = config or msft.MSFTConfig()
        group = shapes.get_shape(shape).group
        self.radius_range_nm = tuple(float(r) for r in radius_nm)
        self.space = ParameterSpace((
            Scalar("radius_nm", "nm", *self.radius_range_nm,
                   doc="circumradius of the cluster"),
            Orientation("orientation", group=group or "I",
                        doc="rotation of the cluster, reduced into the fundamental domain"),
        ))
        self.targets = OrientationRadiusTargets(self.space)
        self.settings = DiffractionSettings(self.shape, self.radius_range_nm, self.msft)
        self.view = DiffractionView(int(input_bin))
        if self.msft.detector_px % self.view.input_bin:
            raise ValueError(f"input_bin {input_bin} does not divide the detector's "
                             f"{self.msft.detector_px} px")

    # -- configuration --------------------------------------------------------------------
    def from_settings(self, settings: DiffractionSettings, view=None) -> DiffractionTask:
        view = view or DiffractionView()
        return DiffractionTask(settings.shape, settings.msft, settings.radius_nm,
                               input_bin=view.input_bin)

    # -- physics --------------------------------------------------------------------------
    def simulate(self, params, rng) -> dict[str, np.ndarray]:
        """Voxelise each cluster and compute its MSFT pattern (no randomness: rng unused)."""
        radii = np.asarray(params["radius_nm"], dtype=np.float64)
        quats = np.asarray(params["orientation"], dtype=np.float64)
        grid = self.msft.grid
        images = np.empty((len(radii), self.msft.detector_px, self.msft.detector_px),
                          dtype=np.float16)
        chunk = 16
        for start in range(0, len(radii), chunk):
            stop = min(start + chunk, len(radii))
            dens = np.stack([shapes.density(self.shape, radii[i], quats[i], grid)
                             for i in range(start, stop)])
            images[start:stop] = msft.patterns(dens, self.msft, backend="auto")
        return {"image": images}

    def detector_mask(self) -> np.ndarray:
        return msft.detector_mask(self.msft)

    def network_input(self, observable: np.ndarray) -> np.ndarray:
        """log10(I / max I) in [-INPUT_DECADES, 0] -> [0, 1], one channel."""
        image = np.asarray(observable, dtype=np.float32)
        x = np.clip(image / INPUT_DECADES + 1.0, 0.0, 1.0)
        return x[None]

    def network_view(self, x: np.ndarray) -> np.ndarray:
        """Average ``input_bin`` x ``input_bin`` pixels (identity for 1)."""
        b = self.view.input_bin
        if b == 1:
            return x
        c, h, w = x.shape
        return x.reshape(c, h // b, b, w // b, b).mean(axis=(2, 4), dtype=np.float32)

    def observe(self, train: bool):
        if not train:
            return None
        from retroscope.tasks.diffraction.augmentation import stielow_augmentation

        return stielow_augmentation()

    # -- experimental files ---------------------------------------------------------------
    def check_settings(self, settings: dict, source: str = "settings") -> dict:
        """Refuse unknown keys and wrong kinds, naming the key and ``source``."""
        unknown = sorted(set(settings) - set(SETTINGS))
        if unknown:
            raise ValueError(f"{source}: unknown diffraction settings {unknown}; known: "
                             f"{sorted(SETTINGS)}")

        def number(v) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool)

        checks = {"scale": lambda v: v in SCALES, "background": number,
                  "center_px": lambda v: isinstance(v, (list, tuple)) and len(v) == 2
                  and all(map(number, v)),
                  "half_width_px": lambda v: number(v) and v > 0}
        for key, value in settings.items():
            if not checks[key](value):
                raise ValueError(f"{source}: {key} must be {SETTINGS[key]}, got {value!r}")
        return settings

    def preprocess(self, image: np.ndarray, settings: dict | None = None) -> np.ndarray:
        """A detector image -> the stored form log10(I / max I) on the 128 x 128 q-grid.

        settings (per lab, TOML/JSON): ``scale`` = "linear" (counts, the default), "log10"
        (log10 of the intensity) or "unit" (the network's scale: the minimum is the floor
        INPUT_DECADES below the maximum, in any integer or float coding, as retroscope writes
        PNG and CXI files); ``center_px`` = [row, col] of the beam centre (default: the array centre);
        ``half_width_px`` = half-width of the crop around it that spans |q| <= 1.017 k (default:
        the largest square that fits). The crop is resampled bilinearly to 128 x 128.
        """
        from scipy.ndimage import map_coordinates

        s = dict(settings or {})
        a = np.asarray(image, dtype=np.float64)
        if a.ndim != 2:
            raise ValueError(f"expected a 2D detector image, got shape {a.shape}")
        if a.size == 0 or not np.all(np.isfinite(a)):
            raise ValueError("image is empty or contains NaN/inf")
        floor = -self.msft.dynamic_range_decades
        scale = s.get("scale", "linear")
        if scale == "linear":
            a = np.clip(a - float(s.get("background", 0.0)), 0.0, None)
            if a.max() <= 0:
                raise ValueError("image has no positive intensity")
            with np.errstate(divide="ignore"):
                a = np.maximum(np.log10(a / a.max()), floor)
        elif scale == "log10":
            a = np.maximum(a - a.max(), floor)
        elif scale == "unit":  # any integer or float coding: floor at the minimum, peak at max
            span = a.max() - a.min()
            if span <= 0:
                raise ValueError("image is constant")
            a = ((a - a.min()) / span - 1.0) * INPUT_DECADES
        else:
            raise ValueError(f"settings.scale must be one of {SCALES}, got {scale!r}")
        cy, cx = s.get("center_px", ((a.shape[0] - 1) / 2, (a.shape[1] - 1) / 2))
        half = float(s.get("half_width_px", min(cy, cx, a.shape[0] - 1 - cy, a.shape[1] - 1 - cx)
                           + 0.5))
        det = self.msft.detector_px
        if (det, det) != a.shape or "center_px" in s or "half_width_px" in s:
            t = (np.arange(det) + 0.5) / det * 2 * half - half
            rows, cols = np.meshgrid(cy + t, cx + t, indexing="ij")
            a = map_coordinates(a, [rows, cols], order=1, mode="constant", cval=floor)
        a = np.where(self.detector_mask(), a, floor)
        return a.astype(np.float32)

    # -- evaluation -----------------------------------------------------------------------
    def metrics(self, true, pred) -> dict[str, np.ndarray]:
        return diffraction_errors(self.targets, true, pred)

    def plots(self, true, pred, out_dir, metrics, reference=None) -> list:
        """Fig. 4a of Stielow et al.: the mean and maximum relative errors, and the
        orientation error, each beside the median of guessing on the same patterns."""
        from retroscope.plots import error_histograms

        out_dir = Path(out_dir)
        guess = {k: float(np.median(v)) for k, v in (reference or {}).items()}
        name = f"guessing ({self.reference_name})"
        return [
            error_histograms({"mean": metrics["mean_rel_error_percent"],
                              "maximum": metrics["max_rel_error_percent"]},
                             out_dir / "relative_errors.png",
                             xlabel="relative error per pattern (% of each parameter's range)",
                             unit="%", reference={f"{name}, mean": guess[
                                 "mean_rel_error_percent"]} if guess else None),
            error_histograms({"network": metrics["orientation_error_deg"]},
                             out_dir / "orientation_errors.png",
                             xlabel="geodesic orientation error (deg, symmetry-aware)",
                             unit="deg", reference={name: guess["orientation_error_deg"]}
                             if guess else None),
        ]

    def reference_prediction(self, train, n: int) -> dict:
        """Guessing without a network: the identity rotation and the mean training radius."""
        return {"orientation": np.tile([0.0, 0.0, 0.0, 1.0], (n, 1)),
                "radius_nm": np.full(n, float(np.mean(train["radius_nm"])))}

    def baseline(self, **kwargs):
        from retroscope.tasks.diffraction.baseline import SimplexFit

        return SimplexFit(self, **kwargs)

    def describe_prediction(self, row: dict) -> dict:
        return {"rotation_deg": _angle_deg(row["orientation"])}

    def describe_truth(self, row: dict) -> dict:
        return {"radius_nm": round(float(row["radius_nm"]), 1),
                "rotation_deg": round(_angle_deg(row["orientation"]), 1)}

    # -- demo -----------------------------------------------------------------------------
    def demo_settings(self) -> DemoSettings:
        """1800 patterns, and 5 minutes of training on 2 x 2 binned 64 x 64 inputs at a peak
        learning rate of 4e-3 (the clock, not the epoch count, ends it). Measured on 2 CPU
        cores (median mean-relative error, orientation error) against the 128 x 128 input at
        2e-3 for 4 minutes (10.6%, 12.3 deg): 64 x 64 at 2e-3 for 4.5 min 6.4%, 7.7 deg;
        32 x 32 7.7%, 10.3 deg; 64 x 64 at 4e-3 for 4.5 min 4.7% and 5.4% (two runs), for 5
        min 3.8%, 4.5 deg. The network is compute-bound (training and validation losses
        agree), so minutes of training matter more than patterns."""
        return DemoSettings(n=1800, shard_size=100, epochs=100, train_minutes=5.0,
                            train={"batch_size": 64, "lr": 4e-3, "view": {"input_bin": 2}},
                            baseline_n=2,
                            baseline_kwargs={"n_starts": 4, "max_evals_per_start": 40},
                            full_scale="20 065 patterns and 60 min of training on 2 CPU cores "
                            "(README, Performance) reach a median mean-relative error of "
                            "1.01% and an orientation error of 1.21 deg on 3 965 test "
                            "patterns")

    def demo_preprocess_settings(self) -> dict:
        return {"scale": "unit"}

    def small(self, n_xy: int = 32, n_z: int = 32, pad_to: int = 80,
              detector_px: int = 64) -> DiffractionTask:
        """A coarse geometry for fast tests (fewer voxels and pixels, a smaller q range)."""
        return DiffractionTask(self.shape, replace(self.msft, n_xy=n_xy, n_z=n_z, pad_to=pad_to,
                                                   detector_px=detector_px),
                               self.radius_range_nm, self.view.input_bin)


def _angle_deg(quat) -> float:
    q = symmetry.reduce_to_fundamental(np.asarray(quat, dtype=np.float64).reshape(1, 4))[0]
    return float(2 * np.degrees(np.arccos(np.clip(abs(q[3]), 0.0, 1.0))))
