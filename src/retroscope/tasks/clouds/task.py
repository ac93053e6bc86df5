"""The ``clouds`` task: find, segment and fit ultracold atom clouds in single camera shots
(Hofer et al., Mach. Learn.: Sci. Technol. 2, 045008 (2021)).

A sample is one shot: zero to five clouds (MOT: large, round-ish thermal Gaussian; ODT: small,
strongly elongated; BEC: Thomas-Fermi condensate on a thermal cloud, beyond the paper; "other":
a ring or crescent, which is no Gaussian at all, beyond the paper) drawn at
random positions, overlapping or not, imaged in absorption (probe with shifting interference
fringes, atom and dark frames with shot and read noise, 16-bit camera; :mod:`.frames`) or in
fluorescence. The stored observable ``od`` is what the lab computes from its raw frames:
OD = -ln[(atoms - dark)/(probe - dark)] (:func:`.optical_depth.optical_depth`), or for
fluorescence (atoms - dark) in OD-equivalent units. The stored ``clouds`` table (5 rows, class
0 = none) holds each cloud's true parameters, from which labels are drawn: box at the 1/e^2
radii along the image axes, mask = the 1/e^2 ellipse (paper Sec. 2); for "other" the mask is
where its OD is at least e^-2 of its peak and the box that mask's bounding box.

The network is torchvision's Mask R-CNN (:mod:`retroscope.models.maskrcnn`); per detected cloud
the Gaussian parameters come from the mask's moments, the background from the histogram peak
outside all masks and the amplitude from Eq. (3) (:mod:`.moments`, paper Sec. 5), and the atom
number from the Gaussian's integral N = (pi/2) wx wy I0 A_pix / (M^2 sigma). An "other"
detection gets no Gaussian parameters (NaN): its centre is the OD-weighted centroid inside its
mask and its atom number the background-subtracted OD summed over the mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retroscope.core.params import ParameterSpace, Scalar
from retroscope.core.task import DemoSettings, DetectionTask, ModelSpec
from retroscope.tasks.clouds.frames import Camera, absorption_shot, fluorescence_shot, sample_probe
from retroscope.tasks.clouds.geometry import (
    Gaussian2D,
    angle_difference,
    canonical,
    half_extents,
)
from retroscope.tasks.clouds.optical_depth import cross_section_m2, optical_depth
from retroscope.tasks.clouds.population import sample_clouds
from retroscope.tasks.clouds.profiles import CLOUD_KINDS, Cloud, integrated_od, render_od

MAX_CLOUDS = 5
#: columns of the stored ``clouds`` table
CLOUD_COLUMNS = ("label", "x0", "y0", "wx", "wy", "theta", "od_peak", "tf_rx", "tf_ry",
                 "tf_od_peak", "ring_width", "crescent", "crescent_angle")
#: parameters that only Gaussian (MOT, ODT, BEC) detections carry
GAUSSIAN_ONLY = ("wx", "wy", "theta", "amplitude")
#: the range the network input is clipped to (OD); clamped pixels give at most ln(counts)
OD_CLIP = (-1.0, 6.0)


@dataclass(frozen=True)
class Imaging:
    """How OD becomes an atom number: probe wavelength (Er 401 nm in the paper), effective
    pixel size in the object plane (camera pitch / magnification, after any binning) and a
    detuning-free, unsaturated cross-section 3 lambda^2 / 2 pi."""

    wavelength_nm: float = 401.0
    object_pixel_um: float = 8.0

    def atoms_per_od_px(self) -> float:
        sigma = cross_section_m2(self.wavelength_nm * 1e-9)
        return (self.object_pixel_um * 1e-6) ** 2 / sigma


@dataclass(frozen=True)
class CloudsSettings:
    """What the stored shots depend on (``CloudsTask.settings``, hashed into the manifest):
    frame shape (rows, cols), the most clouds of each kind (a prefix of ``CLOUD_KINDS``),
    whether fluorescence shots are drawn too, and the imaging (its fields may be given flat:
    ``with_config(object_pixel_um=4)``)."""

    shape: tuple[int, int] = (128, 128)
    max_per_kind: tuple[int, ...] = (1, 2, 1, 1)
    fluorescence: bool = True
    imaging: Imaging = Imaging()


def od_centroid(od: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(x, y) centroid of the non-negative part of ``od`` over ``mask`` (pixel centres at
    j + 0.5, i + 0.5); the mask's own centroid when no OD is positive there."""
    from retroscope.tasks.clouds.moments import _weighted_moments

    w = np.where(mask, np.clip(od, 0.0, None), 0.0)
    if not w.sum() > 0:
        w = mask.astype(np.float64)
    x0, y0 = _weighted_moments(w)[:2]
    return x0, y0


def _cloud_from_row(row: np.ndarray) -> Cloud | None:
    label = int(round(row[0]))
    if label <= 0:
        return None
    kind = CLOUD_KINDS[label - 1]
    tf = tuple(float(v) for v in row[7:10]) if kind == "BEC" else (None, None, None)
    ring = tuple(float(v) for v in row[10:13]) if kind == "other" else (None, None, None)
    return Cloud(kind, *(float(v) for v in row[1:7]), *tf, *ring)


class CloudsTask(DetectionTask):
    name = "clouds"
    title = "Ultracold atom clouds in absorption / fluorescence shots"
    paper = "Hofer et al., Mach. Learn.: Sci. Technol. 2, 045008 (2021)"
    infers = "clouds (MOT, ODT, BEC, other): box, mask, Gaussian parameters, atom number"
    observable = "od"
    label_keys = ("clouds",)
    # at most four clouds per shot: far fewer region proposals and RoI samples than COCO's
    # defaults suffice (32 sampled RoIs per image, at most 8 positive ones for the mask
    # head), and a 64-channel FPN: 0.6 s per training step of 4 frames of 128 x 128 on two
    # CPU cores instead of 2.4 s with 256 channels and 512 RoIs (measured); anchors of aspect
    # 1:4 to 4:1, since an ODT's box along the image axes reaches 1:10 (torchvision: 1:2-2:1)
    model = ModelSpec("maskrcnn_resnet18_fpn", {
        "norm": "group", "rpn_pre_nms_top_n_train": 1000, "rpn_post_nms_top_n_train": 500,
        "rpn_pre_nms_top_n_test": 500, "rpn_post_nms_top_n_test": 200,
        "box_batch_size_per_image": 32, "box_detections_per_img": 20,
        "fpn_channels": 64, "representation_size": 256,
        "aspect_ratios": [0.25, 0.5, 1.0, 2.0, 4.0]})
    #: what a person reads first of each object (demo tables)
    headline_columns = ("x0", "y0", "integrated_od")
    input_label = "optical depth (dimensionless)"

    def __init__(self, shape: tuple[int, int] = (128, 128), max_per_kind: tuple = (1, 2, 1, 1),
                 fluorescence: bool = True, imaging: Imaging | None = None) -> None:
        self.shape = tuple(int(v) for v in shape)
        self.max_per_kind = tuple(int(v) for v in max_per_kind)
        if not 1 <= len(self.max_per_kind) <= len(CLOUD_KINDS):
            raise ValueError(f"max_per_kind: one count per class of {CLOUD_KINDS} (a prefix "
                             f"of them), got {list(max_per_kind)}")
        if sum(self.max_per_kind) > MAX_CLOUDS or min(self.max_per_kind) < 0:
            raise ValueError(f"max_per_kind: counts >= 0 adding up to at most {MAX_CLOUDS}, "
                             f"got {list(max_per_kind)}")
        # the classes are the kinds counted (runs of three-class data sets keep three)
        self.classes = CLOUD_KINDS[:len(self.max_per_kind)]
        self.fluorescence = bool(fluorescence)
        self.imaging = imaging or Imaging()
        params = [Scalar(f"n_{k.lower()}", "clouds", 0, m, step=1, integer=True,
                         doc=f"number of {k} clouds in the shot")
                  for k, m in zip(CLOUD_KINDS, self.max_per_kind)]
        params += [Scalar("probe_kcounts", "kcounts", 1.0, 20.0,
                          doc="peak probe counts per pixel (sets the shot noise), thousands"),
                   Scalar("fringe_contrast", "", 0.0, 0.08,
                          doc="largest contrast of the probe's interference fringes")]
        if self.fluorescence:
            params.append(Scalar("fluorescence", "", 0, 1, step=1, integer=True,
                                 doc="1: fluorescence shot, 0: absorption shot"))
        self.space = ParameterSpace(tuple(params))
        self.settings = CloudsSettings(self.shape, self.max_per_kind, self.fluorescence,
                                       self.imaging)

    # -- settings ------------------------------------------------------------------------
    def from_settings(self, settings: CloudsSettings, view=None) -> CloudsTask:
        return CloudsTask(shape=settings.shape, max_per_kind=settings.max_per_kind,
                          fluorescence=settings.fluorescence, imaging=settings.imaging)

    # -- simulation ----------------------------------------------------------------------
    def simulate_shot(self, row: dict, rng: np.random.Generator):
        """(od float32, clouds table (MAX_CLOUDS, 10)) of one shot with parameters ``row``."""
        counts = {k: int(row[f"n_{k.lower()}"]) for k in self.classes}
        clouds = sample_clouds(counts, self.shape, rng)
        column = render_od(clouds, self.shape)
        contrast = float(row["fringe_contrast"])
        camera = Camera(gain_counts_per_e=rng.uniform(0.5, 2.0), read_noise_e=rng.uniform(2, 10))
        if int(row.get("fluorescence", 0)):
            counts_per_od = rng.uniform(300.0, 3000.0)
            frames = fluorescence_shot(column, camera, rng, counts_per_od=counts_per_od,
                                       background_counts=rng.uniform(20.0, 300.0))
            od = (frames["atoms"] - frames["dark"]) / counts_per_od
        else:
            probe = sample_probe(rng, self.shape, peak_counts=(1e3 * row["probe_kcounts"],) * 2,
                                 plane_contrast=(0.0, max(contrast, 1e-6)),
                                 ring_contrast=(0.0, max(1.5 * contrast, 1e-6)))
            frames = absorption_shot(column, probe, camera, rng)
            od, _ = optical_depth(frames["atoms"], frames["probe"], frames["dark"],
                                  saturation_counts=camera.max_counts)
        table = np.zeros((MAX_CLOUDS, len(CLOUD_COLUMNS)), np.float32)
        for i, c in enumerate(clouds[:MAX_CLOUDS]):
            table[i] = [CLOUD_KINDS.index(c.kind) + 1, c.x0, c.y0, c.wx, c.wy, c.theta,
                        c.od_peak, c.tf_rx or 0.0, c.tf_ry or 0.0, c.tf_od_peak or 0.0,
                        c.ring_width or 0.0, c.crescent or 0.0, c.crescent_angle or 0.0]
        return np.clip(od, *OD_CLIP).astype(np.float32), table

    def simulate(self, params, rng):
        n = len(next(iter(params.values())))
        ods, tables = [], []
        for i in range(n):
            od, table = self.simulate_shot({k: v[i] for k, v in params.items()}, rng)
            ods.append(od)
            tables.append(table)
        return {"od": np.stack(ods), "clouds": np.stack(tables)}

    def network_input(self, observable):
        x = np.clip(np.asarray(observable, dtype=np.float32), *OD_CLIP)
        return x[None] if x.ndim == 2 else x

    # -- training ------------------------------------------------------------------------
    def training_defaults(self) -> dict:
        """The paper's recipe (Sec. 3): batch 4; SGD at 5e-3 from random weights here."""
        return {"batch_size": 4, "lr": 5e-3}

    def tuning_space(self) -> tuple:
        """The search space of the paper's Table 1 (SGD with a step learning-rate schedule)."""
        from retroscope.train.tune import Hyperparameter

        return (Hyperparameter("lr", 1e-4, 9e-3, log=True),
                Hyperparameter("momentum", 0.7, 0.92),
                Hyperparameter("step_size", 3, 15, integer=True),
                Hyperparameter("decay", 1e-3, 1.0, log=True))

    # -- labels --------------------------------------------------------------------------
    def clouds_of(self, labels: dict) -> list[Cloud]:
        return [c for c in (_cloud_from_row(r) for r in labels["clouds"]) if c is not None]

    def detection_target(self, labels):
        boxes, classes, masks = [], [], []
        for cloud in self.clouds_of(labels):
            mask = cloud.mask(self.shape)
            if not mask.any():
                continue
            box = self._clipped_box(cloud)
            if box[2] - box[0] < 1.0 or box[3] - box[1] < 1.0:
                continue
            boxes.append(box)
            classes.append(CLOUD_KINDS.index(cloud.kind) + 1)
            masks.append(mask)
        return {"boxes": np.asarray(boxes, np.float32).reshape(-1, 4),
                "labels": np.asarray(classes, np.int64),
                "masks": (np.stack(masks) if masks
                          else np.zeros((0, *self.shape), bool)).astype(np.uint8)}

    def _atoms(self, integrated_od_px: float) -> float:
        return integrated_od_px * self.imaging.atoms_per_od_px()

    def true_objects(self, labels, image):
        out = []
        for cloud in self.clouds_of(labels):
            mask = cloud.mask(self.shape)
            if not mask.any():
                continue
            if not cloud.gaussian:
                od = cloud.od(self.shape)
                x0, y0 = od_centroid(od, mask)
                out.append({"class": cloud.kind, "mask": mask, "box": self._clipped_box(cloud),
                            "x0": x0, "y0": y0, **{k: float("nan") for k in GAUSSIAN_ONLY},
                            "atom_number": self._atoms(float(od.sum()))})
                continue
            x0, y0, wx, wy, theta = cloud.label_ellipse()
            wx, wy, theta = (float(v) for v in canonical(wx, wy, theta))
            integral = integrated_od(cloud.wx, cloud.wy, cloud.od_peak, cloud.tf_rx or 0.0,
                                     cloud.tf_ry or 0.0, cloud.tf_od_peak or 0.0)
            amplitude = cloud.od_peak + (cloud.tf_od_peak or 0.0)
            out.append({"class": cloud.kind, "mask": mask, "box": self._clipped_box(cloud),
                        "x0": x0, "y0": y0, "wx": wx, "wy": wy, "theta": theta,
                        "amplitude": amplitude, "atom_number": self._atoms(integral),
                        "gaussian": Gaussian2D(x0, y0, wx, wy, theta, amplitude, 0.0)})
        return out

    def _clipped_box(self, cloud: Cloud) -> list[float]:
        rows, cols = self.shape
        x1, y1, x2, y2 = cloud.box(self.shape)
        return [max(x1, 0.0), max(y1, 0.0), min(x2, cols), min(y2, rows)]

    def evaluate_objects(self, images, labels, objects, matches, plot_dir,
                         refined=None) -> dict:
        """Sec. 5 / Fig. 7: Gaussian parameters from the masks against the conventional
        ROI moments, and mask-seeded against unseeded 2D fits (:mod:`.evaluation`);
        ``refined`` = (objects, matches) of the refined detections adds the joint fit."""
        from retroscope.tasks.clouds.evaluation import gaussian_comparison, rmse_bar_plot

        truths = [self.true_objects(lab, img) for lab, img in zip(labels, images)]
        result = gaussian_comparison(images, truths, objects, matches, refined=refined)
        if result["clouds"]:
            result["plots"] = [str(rmse_bar_plot(result, plot_dir / "gaussian_rmse.png"))]
        return result

    refines = True

    def refine(self, image, detection, score_threshold):
        """The joint fit of all detected clouds (thermal, bimodal, rings) seeded by their
        masks (:func:`.refine.refine_detection`): boxes and masks redrawn from the fitted
        labels, the fits kept under ``"fits"`` for :meth:`describe_objects`."""
        from retroscope.tasks.clouds.refine import refine_detection

        return refine_detection(image, detection, self.classes, score_threshold)

    def describe_objects(self, image, detection):
        from retroscope.tasks.clouds.moments import gaussian_from_mask

        od = np.asarray(image, np.float64)
        od = od[0] if od.ndim == 3 else od
        soft = np.asarray(detection["masks"], np.float64)
        masks = soft >= 0.5
        fits = detection.get("fits") or [None] * len(soft)
        objects = []
        for k in range(len(soft)):
            obj = {"class": CLOUD_KINDS[int(detection["labels"][k]) - 1],
                   "score": float(detection["scores"][k]),
                   "box": [float(v) for v in detection["boxes"][k]], "mask": masks[k],
                   "refined": fits[k] is not None}
            if not masks[k].any():
                continue
            if fits[k] is not None and fits[k].kind != "other":
                objects.append(self._describe_fit(od, obj, fits[k]))
                continue  # a refined ring is described from its redrawn mask below
            g = gaussian_from_mask(od, soft[k], all_masks=soft)
            model = g.render(od.shape)
            inside = masks[k]
            scale = max(abs(g.amplitude), 1e-3)
            obj["shape_score"] = float(np.sqrt(np.mean((od[inside] - model[inside]) ** 2)) / scale)
            if obj["class"] == "other":  # no Gaussian: centroid and summed OD only
                x0, y0 = od_centroid(od - g.background, inside)
                integral = float((od - g.background)[inside].sum())
                obj.update({"x0": x0, "y0": y0, **{n: float("nan") for n in GAUSSIAN_ONLY},
                            "background": g.background, "integrated_od": integral,
                            "atom_number": self._atoms(integral)})
                objects.append(obj)
                continue
            obj.update({"x0": g.x0, "y0": g.y0, "wx": g.wx, "wy": g.wy, "theta": g.theta,
                        "amplitude": g.amplitude, "background": g.background,
                        "integrated_od": math.pi / 2 * g.wx * g.wy * g.amplitude,
                        "atom_number": self._atoms(math.pi / 2 * g.wx * g.wy * g.amplitude)})
            objects.append(obj)
        return objects

    def _describe_fit(self, od, obj, fit):
        """Parameters of a cloud from the joint fit (:class:`.joint_fit.CloudFit`): the label
        ellipse (for a BEC the larger of the thermal and Thomas-Fermi radii per axis), the
        peak OD (thermal + condensate), the fitted background and the profile's integral."""
        x0, y0, wx, wy, theta = fit.label
        inside = obj["mask"]
        scale = max(abs(fit.peak), 1e-3)
        model = fit.render(od.shape)
        obj["shape_score"] = float(np.sqrt(np.mean((od[inside] - model[inside]) ** 2)) / scale)
        obj.update({"x0": x0, "y0": y0, "wx": wx, "wy": wy, "theta": theta,
                    "amplitude": fit.peak, "background": fit.gaussian.background,
                    "integrated_od": fit.integrated_od,
                    "atom_number": self._atoms(fit.integrated_od)})
        return obj

    def interval_scales(self, obj):
        """Per parameter the length its interval is stated in units of: centres in the
        cloud's 1/e^2 half-extent along that axis (for "other", half its box), widths and
        amplitudes relative, theta in rad. "other" objects have only x0, y0, atom_number."""
        if obj["class"] == "other":
            x1, y1, x2, y2 = obj["box"]
            return {"x0": max((x2 - x1) / 2, 0.5), "y0": max((y2 - y1) / 2, 0.5),
                    "atom_number": abs(obj["atom_number"])}
        hx, hy = half_extents(obj["wx"], obj["wy"], obj["theta"])
        return {"x0": float(hx), "y0": float(hy), "wx": obj["wx"], "wy": obj["wy"],
                "theta": 1.0, "amplitude": abs(obj["amplitude"]),
                "atom_number": abs(obj["atom_number"])}

    def interval_unit(self, name):
        return {"theta": "rad"}.get(name, "relative to the object's own size")

    def parameter_error(self, name, predicted, true):
        if name == "theta":
            return float(angle_difference(predicted, true))
        return float(predicted) - float(true)

    def check_settings(self, settings, source="settings"):
        from retroscope.tasks.clouds.lab import check_settings

        return check_settings(settings, source)

    def read_experimental(self, paths, settings=None):
        """Raw shots (triplets by file-name pattern, or HDF5 shot files) to binned OD
        (:mod:`.lab`)."""
        from retroscope.tasks.clouds.lab import shot_inputs

        return shot_inputs(paths, settings, self.shape)

    def live_groups(self, names, settings=None):
        """Absorption triplets are answered once all three frames have landed."""
        from retroscope.tasks.clouds.lab import live_groups

        return live_groups(names, settings)

    def frame_columns(self, context):
        from retroscope.tasks.clouds.lab import frame_columns

        return frame_columns(context)

    def to_frame(self, obj, context):
        from retroscope.tasks.clouds.lab import to_frame

        return to_frame(obj, context)

    # -- demo ----------------------------------------------------------------------------
    def demo_settings(self) -> DemoSettings:
        return DemoSettings(n=600, shard_size=100, epochs=3, train_minutes=3.0,
                            train={"step_size": 2, "limit_val": 60},
                            full_scale="12 000 shots and 55 min of training on 2 CPU cores "
                            "(README, Performance) reach a COCO box / mask mAP of 0.901 / "
                            "0.889 refined (0.742 / 0.696 from the network alone) on 1 672 "
                            "test shots")

    def demo_files(self, test, files_dir, n):
        """Test shots written back as raw absorption triplets (16-bit TIFF: a flat probe of
        20 000 counts over a dark level of 100, atoms = dark + (probe - dark) exp(-OD)), in
        ``files_dir/shots``."""
        import tifffile

        shots = Path(files_dir) / "shots"
        shots.mkdir(parents=True, exist_ok=True)
        files, truth = [], []
        dark, probe = 100.0, 20000.0
        for i in range(n):
            od = np.asarray(test.observable(i), np.float64)
            frames = {"Image": dark + (probe - dark) * np.exp(-od),
                      "Probe": np.full(od.shape, probe), "Background": np.full(od.shape, dark)}
            name = f"demo{i:03d}"
            for role, frame in frames.items():
                path = shots / f"{role}_{name}.tiff"
                tifffile.imwrite(path, np.clip(np.round(frame), 0, 65535).astype(np.uint16))
                files.append(path)
            clouds = self.clouds_of(test.labels_row(i))
            truth.append({"input": name, "objects": ", ".join(
                f"{c.kind} ({c.x0:.0f}, {c.y0:.0f})" for c in clouds) or "none"})
        return files, truth

    def describe_truth(self, row):
        return {k: int(v) if float(v).is_integer() else round(float(v), 3)
                for k, v in row.items()}
