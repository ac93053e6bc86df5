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


@dataclass(frozen=True)
class DiffractionSettings:
    """What the stored patterns depend on (``DiffractionTask.settings``, hashed into the
    manifest): the cluster's shape, its circumradius range (nm) and the MSFT geometry, whose
    fields may also be given flat (``with_config(n_xy=32)``)."""

    shape: str = "icosahedron"
    radius_nm: tuple[float, float] = (30.0, 160.0)
    msft: msft.MSFTConfig = msft.MSFTConfig()


class DiffractionTask(Task):
    name = "diffraction"
    title = "Wide-angle XUV scattering of nanoclusters"
    paper = "Stielow et al., Mach. Learn.: Sci. Technol. (2020)"
    infers = "circumradius (nm) and orientation (quaternion) of an icosahedral cluster"
    observable = "image"
    model = ModelSpec("resnet18", {"base_width": 32, "stem": "imagenet"})
    #: a detector frame (square-ish, at least 32 px a side); stacks are runs of shots
    accepts = InputSpec(min_px=32, aspect=(0.5, 2.0))
    reference_name = "the identity rotation and the mean training radius"
    #: what a person reads first: the size and the rotation angle of the cluster
    headline_columns = ("radius_nm", "rotation_deg")

    def __init__(self, shape: str = "icosahedron", config: msft.MSFTConfig | None = None,
                 radius_nm: tuple[float, float] = (30.0, 160.0)) -> None:
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

    # -- configuration --------------------------------------------------------------------
    def from_settings(self, settings: DiffractionSettings, view=None) -> DiffractionTask:
        return DiffractionTask(settings.shape, settings.msft, settings.radius_nm)

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

    def observe(self, train: bool):
        if not train:
            return None
        from retroscope.tasks.diffraction.augmentation import stielow_augmentation

        return stielow_augmentation()

    # -- experimental files ---------------------------------------------------------------
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
            raise ValueError(f"settings.scale must be linear, log10 or unit, got {scale!r}")
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

    def plots(self, true, pred, out_dir, metrics) -> list:
        from retroscope.plots import error_histograms

        out_dir = Path(out_dir)
        return [
            error_histograms({"mean": metrics["mean_rel_error_percent"],
                              "maximum": metrics["max_rel_error_percent"]},
                             out_dir / "relative_errors.png",
                             xlabel="relative prediction error (% of parameter range)"),
            error_histograms({"orientation": metrics["orientation_error_deg"]},
                             out_dir / "orientation_errors.png",
                             xlabel="geodesic orientation error (deg, symmetry-aware)"),
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
        return DemoSettings(n=2000, shard_size=100, epochs=12, train_minutes=4.0,
                            train={"batch_size": 64, "lr": 2e-3}, baseline_n=2,
                            baseline_kwargs={"n_starts": 4, "max_evals_per_start": 40})

    def demo_preprocess_settings(self) -> dict:
        return {"scale": "unit"}

    def small(self, n_xy: int = 32, n_z: int = 32, pad_to: int = 80,
              detector_px: int = 64) -> DiffractionTask:
        """A coarse geometry for fast tests (fewer voxels and pixels, a smaller q range)."""
        return DiffractionTask(self.shape, replace(self.msft, n_xy=n_xy, n_z=n_z, pad_to=pad_to,
                                                   detector_px=detector_px),
                               self.radius_range_nm)


def _angle_deg(quat) -> float:
    q = symmetry.reduce_to_fundamental(np.asarray(quat, dtype=np.float64).reshape(1, 4))[0]
    return float(2 * np.degrees(np.arccos(np.clip(abs(q[3]), 0.0, 1.0))))
