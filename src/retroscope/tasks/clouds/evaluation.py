"""How well the Gaussian parameters read from the network's masks describe the clouds, next to
the paper's conventional method, and what the masks buy a 2D fit (Hofer et al. 2021, Sec. 5,
Fig. 7).

For every thermal cloud (MOT, ODT: the Gaussians of Eq. 1) that a detection of a Gaussian
class matches (mask IoU >= 0.5 with the true 1/e^2 ellipse; matches detected as "other", which
carry no Gaussian parameters, are counted apart):

- mask method: moments of the predicted mask, background from the histogram peak outside all
  masks, I0 from Eq. (3) (:func:`.moments.gaussian_from_mask`);
- conventional method: first and second moments of the image inside the *true* box (the
  ground-truth ROI the paper hands it), background from the histogram peak outside the true
  masks, I0 from Eq. (3);
- errors against the truth of the simulation and, as in the paper, against a 2D fit seeded by
  the mask (the paper's "true" parameters): centres divided by the 1/e^2 half-extent along
  that image axis, widths relative, theta in radians (only for clouds with wy/wx < 0.8, whose
  orientation is defined), I0 and Ib divided by I0;
- the errors against the truth also apart for isolated clouds (whose true 1/e^2 ellipse
  shares no pixel with another cloud's) and overlapping ones: on the simulated test split a
  third of the thermal clouds overlap another, and those dominate every method's RMSE;
- the refined detections (:mod:`.refine`), when given: their parameters' errors against the
  truth, as the method "joint_fit";
- fit timing: the mask-seeded fit in the mask's box expanded x2 (:func:`.fitting.seeded_fit`)
  against the fit a lab script runs without a seed (whole frame, generic start), per cloud on
  frames that hold one cloud (where both can succeed) and how often the unseeded fit lands
  more than one radius away from the true centre on frames with several clouds.
"""

from __future__ import annotations

import numpy as np

from retroscope.tasks.clouds.fitting import fit_gaussian_2d, seeded_fit
from retroscope.tasks.clouds.geometry import Gaussian2D, angle_difference, half_extents
from retroscope.tasks.clouds.moments import (
    amplitude_from_power,
    background_histogram_peak,
    image_moments,
)

PARAMETERS = ("x0", "y0", "wx", "wy", "theta", "amplitude", "background")
ROUND_ASPECT = 0.8


def _errors(est: Gaussian2D, ref: Gaussian2D) -> dict[str, float]:
    hx, hy = half_extents(ref.wx, ref.wy, ref.theta)
    out = {"x0": (est.x0 - ref.x0) / hx, "y0": (est.y0 - ref.y0) / hy,
           "wx": est.wx / ref.wx - 1.0, "wy": est.wy / ref.wy - 1.0,
           "amplitude": est.amplitude / ref.amplitude - 1.0,
           "background": (est.background - ref.background) / ref.amplitude}
    if ref.wy / ref.wx < ROUND_ASPECT:
        out["theta"] = float(angle_difference(est.theta, ref.theta))
    return {k: float(v) for k, v in out.items()}


def conventional(image: np.ndarray, box, true_masks: np.ndarray) -> Gaussian2D:
    """The paper's non-fitting method (Fig. 6b): moments of the image inside the given ROI."""
    background = background_histogram_peak(image, true_masks.any(0))
    x0, y0, wx, wy, theta = image_moments(image, box, background)
    amplitude = amplitude_from_power(image, x0, y0, wx, wy, theta, background)
    return Gaussian2D(x0, y0, wx, wy, theta, amplitude, background)


def _rms(values: list[float]) -> float | None:
    return float(np.sqrt(np.mean(np.square(values)))) if values else None


OVERLAP_SUBSETS = ("isolated", "overlapping")


def _overlap_subset(true_masks: np.ndarray, q: int) -> str:
    """"overlapping" where cloud ``q``'s true mask shares a pixel with another's."""
    others = np.delete(true_masks, q, axis=0)
    touching = others.size and np.logical_and(true_masks[q], others.any(0)).any()
    return OVERLAP_SUBSETS[bool(touching)]


def _ratios(rmse: dict, reference: dict) -> dict:
    """Per parameter ``rmse`` / ``reference`` (None where either is missing or zero)."""
    return {p: (rmse[p] / reference[p] if rmse[p] is not None and reference[p] else None)
            for p in PARAMETERS}


def _subset_summary(errors: dict) -> dict:
    """Cloud count, RMSE (against the truth) per method and the mask / conventional ratio."""
    rmse = {m: {p: _rms(v) for p, v in by.items()} for m, by in errors.items()}
    return {"clouds": len(errors["mask"]["x0"]), "rmse": rmse,
            "mask_over_conventional": _ratios(rmse["mask"], rmse["conventional"])}


def joint_fit_errors(truths, objects, matches) -> dict:
    """Per-parameter errors (against the truth) of the refined detections' parameters
    (:mod:`.refine`: the joint fit seeded by the masks, or the mask moments where the fit was
    not accepted) for the matched thermal clouds, in all and apart for isolated and
    overlapping clouds; also how many were refined."""
    err = {p: [] for p in PARAMETERS}
    by_overlap = {s: {p: [] for p in PARAMETERS} for s in OVERLAP_SUBSETS}
    refined, total = 0, 0
    for truth, objs, pairs in zip(truths, objects, matches):
        true_masks = np.stack([t["mask"] for t in truth]) if truth else None
        for p, q, _ in pairs:
            t, o = truth[q], objs[p]
            if t["class"] not in ("MOT", "ODT") or not np.isfinite(o["wx"]):
                continue
            total += 1
            refined += bool(o.get("refined"))
            est = Gaussian2D(o["x0"], o["y0"], o["wx"], o["wy"], o["theta"], o["amplitude"],
                             o["background"])
            subset = by_overlap[_overlap_subset(true_masks, q)]
            for k, v in _errors(est, t["gaussian"]).items():
                err[k].append(v)
                subset[k].append(v)
    subsets = {s: {"clouds": len(by["x0"]), "rmse": {p: _rms(v) for p, v in by.items()}}
               for s, by in by_overlap.items()}
    return {"clouds": total, "refined": refined, "rmse": {p: _rms(v) for p, v in err.items()},
            "by_overlap": subsets}


def gaussian_comparison(images, truths, objects, matches, max_fits: int = 200,
                        refined=None) -> dict:
    """Per-parameter RMSE of the mask and the conventional method (against the truth and
    against the mask-seeded fit) and the seeded / unseeded fit timing.

    ``images``: 2D OD arrays; ``truths``: per image the task's ``true_objects`` (with a
    "gaussian" entry for thermal clouds); ``objects``: per image the described detections;
    ``matches``: per image (detection index, truth index, IoU) pairs. At most ``max_fits``
    clouds get the 2D fits. ``refined``: (objects, matches) of the refined detections, whose
    errors are added as the method "joint_fit" (against the truth)."""
    err = {m: {ref: {p: [] for p in PARAMETERS} for ref in ("truth", "fit")}
           for m in ("mask", "conventional")}
    by_overlap = {s: {m: {p: [] for p in PARAMETERS} for m in ("mask", "conventional")}
                  for s in OVERLAP_SUBSETS}
    timing = {"seeded_s": [], "unseeded_s": [], "seeded_nfev": [], "unseeded_nfev": [],
              "seeded_centre_error": [], "unseeded_centre_error": []}
    wrong_cloud, multi, not_gaussian = 0, 0, 0
    fits = 0
    for image, truth, objs, pairs in zip(images, truths, objects, matches):
        image = np.asarray(image, np.float64)
        image = image[0] if image.ndim == 3 else image
        true_masks = np.stack([t["mask"] for t in truth]) if truth else np.zeros((0,) + image.shape)
        thermal = [t for t in truth if t["class"] in ("MOT", "ODT")]
        for p, q, _ in pairs:
            t = truth[q]
            if t["class"] not in ("MOT", "ODT"):
                continue
            ref = t["gaussian"]
            o = objs[p]
            if not np.isfinite(o["wx"]):  # detected as a non-Gaussian ("other") cloud
                not_gaussian += 1
                continue
            mask_g = Gaussian2D(o["x0"], o["y0"], o["wx"], o["wy"], o["theta"], o["amplitude"],
                                o["background"])
            conv_g = conventional(image, t["box"], true_masks)
            subset = by_overlap[_overlap_subset(true_masks, q)]
            for name, est in (("mask", mask_g), ("conventional", conv_g)):
                for k, v in _errors(est, ref).items():
                    err[name]["truth"][k].append(v)
                    subset[name][k].append(v)
            if fits >= max_fits:
                continue
            fits += 1
            others = [truth[j]["box"] for j in range(len(truth)) if j != q]
            seeded = seeded_fit(image, mask_g, expand=2.0, others=others)
            for name, est in (("mask", mask_g), ("conventional", conv_g)):
                for k, v in _errors(est, seeded.params).items():
                    err[name]["fit"][k].append(v)
            unseeded = fit_gaussian_2d(image)
            centre = {kind: float(np.hypot(r.params.x0 - ref.x0, r.params.y0 - ref.y0)
                                  / ref.wy) for kind, r in (("seeded", seeded),
                                                            ("unseeded", unseeded))}
            if len(thermal) == 1 and len(truth) == 1:
                timing["seeded_s"].append(seeded.seconds)
                timing["unseeded_s"].append(unseeded.seconds)
                timing["seeded_nfev"].append(seeded.nfev)
                timing["unseeded_nfev"].append(unseeded.nfev)
                timing["seeded_centre_error"].append(centre["seeded"])
                timing["unseeded_centre_error"].append(centre["unseeded"])
            elif len(truth) > 1:
                multi += 1
                wrong_cloud += centre["unseeded"] > 1.0
    rmse = {m: {ref: {p: _rms(v) for p, v in by.items()} for ref, by in refs.items()}
            for m, refs in err.items()}
    ratio = {ref: _ratios(rmse["mask"][ref], rmse["conventional"][ref])
             for ref in ("truth", "fit")}
    n1 = len(timing["seeded_s"])
    fit_summary = {
        "single_cloud_frames": n1,
        "seeded_median_ms": 1e3 * float(np.median(timing["seeded_s"])) if n1 else None,
        "unseeded_median_ms": 1e3 * float(np.median(timing["unseeded_s"])) if n1 else None,
        "speedup_median": (float(np.median(np.array(timing["unseeded_s"])
                                           / np.array(timing["seeded_s"]))) if n1 else None),
        "seeded_median_nfev": float(np.median(timing["seeded_nfev"])) if n1 else None,
        "unseeded_median_nfev": float(np.median(timing["unseeded_nfev"])) if n1 else None,
        "seeded_centre_error_rms": _rms(timing["seeded_centre_error"]),
        "unseeded_centre_error_rms": _rms(timing["unseeded_centre_error"]),
        "multi_cloud_fits": multi,
        "unseeded_wrong_cloud_fraction": wrong_cloud / multi if multi else None,
        "centre_error_unit": "minor 1/e^2 radius",
    }
    by_overlap_summary = {s: _subset_summary(by) for s, by in by_overlap.items()}
    joint = None
    if refined is not None:
        joint = joint_fit_errors(truths, *refined)
        joint["over_conventional"] = _ratios(joint["rmse"], rmse["conventional"]["truth"])
        for name, subset in joint["by_overlap"].items():
            subset["over_conventional"] = _ratios(
                subset["rmse"], by_overlap_summary[name]["rmse"]["conventional"])
    return {"clouds": len(err["mask"]["truth"]["x0"]), "rmse": rmse,
            "by_overlap": by_overlap_summary,
            "matched_as_non_gaussian": not_gaussian,
            "mask_over_conventional": ratio, "fits": fit_summary, "joint_fit": joint,
            "normalisation": "centres / 1/e^2 half-extent along the axis; widths, I0 relative; "
                             "Ib / I0; theta in rad for wy/wx < 0.8"}


#: the panels of :func:`rmse_bar_plot`: parameters that share a unit, and the unit
RMSE_PANELS = ((("x0", "y0"), "centre error (1/e\u00b2 radii along the axis)"),
               (("wx", "wy", "amplitude"), "relative error of wx, wy, I0 (fraction)"),
               (("theta",), "angle error (rad)"),
               (("background",), "background error (fraction of I0)"))


def rmse_bar_plot(comparison: dict, path, reference: str = "truth"):
    """Fig. 7h: RMSE of each Gaussian parameter, mask method next to the conventional one
    (and the joint fit, when the comparison has it), one panel per unit (centres in radii,
    widths and I0 relative, the angle in rad, the background relative to I0)."""
    from retroscope.plots import figure, save

    rmse = comparison["rmse"]
    bars = [("masks", rmse["mask"][reference], "tab:blue"),
            ("conventional (ROI moments)", rmse["conventional"][reference], "tab:orange")]
    if reference == "truth" and comparison.get("joint_fit"):
        bars.append(("joint fit seeded by the masks", comparison["joint_fit"]["rmse"],
                     "tab:green"))
    panels = [(names, label) for names, label in RMSE_PANELS
              if any(rmse["mask"][reference].get(p) is not None for p in names)]
    fig, axes = figure(1, len(panels), (2.2, 3.2))
    width = 0.8 / len(bars)
    for ax, (names, label) in zip(axes, panels):
        x = np.arange(len(names))
        for k, (method, values, colour) in enumerate(bars):
            ax.bar(x + (k - (len(bars) - 1) / 2) * width,
                   [values.get(p) or 0.0 for p in names], width, label=method, color=colour)
        ax.set_xticks(x, ["I0" if p == "amplitude" else p for p in names])
        ax.set_xlabel("parameter")
        ax.set_ylabel(f"RMSE, {label}", fontsize=8)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center",
               ncols=len(bars), fontsize=8)
    fig.suptitle(f"Gaussian parameters against the {reference}, "
                 f"{comparison.get('clouds', '?')} clouds", fontsize=9)
    return save(fig, path)
