"""Joint fit of all clouds of a shot, seeded by the network's masks (tasks/clouds/refine.py)."""

import numpy as np
import pytest

from retroscope.tasks.clouds import joint_fit, refine
from retroscope.tasks.clouds.fitting import seeded_fit
from retroscope.tasks.clouds.geometry import Gaussian2D, angle_difference
from retroscope.tasks.clouds.profiles import Cloud, render_od, ring_column

SHAPE = (96, 96)
CLASSES = ("MOT", "ODT", "BEC", "other")
# a MOT with an ODT crossing it: the doubled ROI of each holds most of the other's light
MOT = Cloud("MOT", 44.0, 50.0, 16.0, 13.0, 0.3, 0.6)
ODT = Cloud("ODT", 52.0, 44.0, 30.0, 4.0, -0.4, 1.5)
BEC = Cloud("BEC", 30.0, 34.0, 11.0, 9.0, 0.2, 0.35, 6.0, 5.0, 1.4)
RING = Cloud("other", 70.0, 70.0, 12.0, 11.0, 0.0, 1.0, ring_width=3.0, crescent=0.0,
             crescent_angle=0.0)


def shot(clouds, seed=0, sigma=0.03, background=0.05):
    rng = np.random.default_rng(seed)
    return render_od(clouds, SHAPE) + background + rng.normal(0.0, sigma, SHAPE)


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def perturbed(cloud, rng, amplitude=None):
    x0, y0, wx, wy, theta = cloud.label_ellipse()
    f = rng.uniform(0.85, 1.15, 2)
    return Gaussian2D(x0 + rng.normal(0, 1), y0 + rng.normal(0, 1), wx * f[0], wy * f[1],
                      theta + 0.1, amplitude or cloud.od_peak, 0.0)


def detection(clouds, scores=None, shift=0):
    """A network-like detection: the true masks (shifted by ``shift`` px) as soft masks."""
    masks = np.stack([np.roll(c.mask(SHAPE), shift, axis=1) for c in clouds]).astype(np.float32)
    boxes = np.stack([c.box(SHAPE) for c in clouds]).astype(np.float32)
    labels = np.array([CLASSES.index(c.kind) + 1 for c in clouds])
    scores = np.ones(len(clouds), np.float32) if scores is None else np.asarray(scores, np.float32)
    return {"boxes": boxes, "scores": scores, "labels": labels, "masks": masks}


def test_jacobian_matches_finite_differences():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 40, 300), rng.uniform(0, 40, 300)
    evaluate, _ = joint_fit._model_and_jacobian(x, y, ["MOT", "BEC", "other"])
    p = np.array([0.1, 20, 18, 8, 5, 0.3, 1.0, 22, 21, 9, 6, -0.4, 0.5, 5, 4, 1.2,
                  19, 22, 12, 10, 0.3, 0.8, 3.0, 1.5, 0.7])
    numeric = np.stack([(evaluate(p + 1e-6 * e, False)[0] - evaluate(p - 1e-6 * e, False)[0])
                        / 2e-6 for e in np.eye(p.size)], 1)
    np.testing.assert_allclose(evaluate(p, True)[1], numeric, atol=1e-6)
    value, _ = joint_fit._ring(x, y, p[16:], True)  # the Jacobian's profile is the simulator's
    np.testing.assert_allclose(value, ring_column(x, y, *p[16:]), rtol=1e-12)


def test_joint_fit_separates_overlapping_clouds_that_single_fits_merge():
    image = shot([MOT, ODT])
    rng = np.random.default_rng(1)
    seeds = [perturbed(MOT, rng), perturbed(ODT, rng)]
    fits, result = joint_fit.joint_fit(image, seeds, ["MOT", "ODT"])
    assert result.success
    for cloud, fit in zip((MOT, ODT), fits):
        g = fit.gaussian
        assert abs(g.x0 - cloud.x0) < 0.3 and abs(g.y0 - cloud.y0) < 0.3
        assert g.wx == pytest.approx(cloud.wx, rel=0.03) and g.wy == pytest.approx(cloud.wy,
                                                                                  rel=0.05)
        assert abs(angle_difference(g.theta, cloud.theta)) < 0.03
        assert g.amplitude == pytest.approx(cloud.od_peak, rel=0.05)
        assert g.background == pytest.approx(0.05, abs=0.01)
        assert iou(fit.mask(SHAPE), cloud.mask(SHAPE)) > 0.95
    # the paper's one-cloud fit in the doubled ROI, even from the true start, is taken over
    # by the brighter ODT inside it (measured IoU with the MOT 0.33)
    single = seeded_fit(image, Gaussian2D(*MOT.label_ellipse(), MOT.od_peak, 0.05)).params
    assert iou(single.mask(SHAPE), MOT.mask(SHAPE)) < 0.6


def test_bec_fit_recovers_thermal_and_condensate_parts():
    image = shot([BEC], seed=3, sigma=0.02)
    rng = np.random.default_rng(2)
    (fit,), result = joint_fit.joint_fit(image, [perturbed(BEC, rng, 1.7)], ["BEC"])
    assert result.success
    assert fit.gaussian.wx == pytest.approx(BEC.wx, rel=0.05)
    assert fit.gaussian.amplitude == pytest.approx(BEC.od_peak, rel=0.1)
    assert fit.tf_amplitude == pytest.approx(BEC.tf_od_peak, rel=0.1)
    assert fit.peak == pytest.approx(BEC.od_peak + BEC.tf_od_peak, rel=0.05)
    assert sorted([fit.tf_rx, fit.tf_ry]) == pytest.approx(sorted([BEC.tf_rx, BEC.tf_ry]),
                                                           rel=0.08)
    true_integral = (np.pi / 2 * BEC.wx * BEC.wy * BEC.od_peak
                     + 2 * np.pi / 5 * BEC.tf_rx * BEC.tf_ry * BEC.tf_od_peak)
    assert fit.integrated_od == pytest.approx(true_integral, rel=0.05)
    assert iou(fit.mask(SHAPE), BEC.mask(SHAPE)) > 0.93
    # the rendered fit reproduces the noise-free shot
    clean = render_od([BEC], SHAPE) + 0.05
    assert np.abs(fit.render(SHAPE) - clean).max() < 0.1


def test_refine_detection_redraws_every_cloud_from_the_joint_fit():
    clouds = [MOT, ODT, RING]
    image = shot(clouds, seed=4)
    det = detection(clouds, shift=2)  # masks 2 px off, as a poorly trained network gives
    out = refine.refine_detection(image, det, CLASSES)
    for k, cloud in enumerate(clouds):
        assert out["fits"][k] is not None and out["fits"][k].kind == cloud.kind
        assert iou(out["masks"][k] > 0.5, cloud.mask(SHAPE)) > 0.9
        assert iou(out["masks"][k] > 0.5, cloud.mask(SHAPE)) > iou(det["masks"][k] > 0.5,
                                                                  cloud.mask(SHAPE)) + 0.1
        np.testing.assert_allclose(out["boxes"][k], cloud.box(SHAPE), atol=1.1)
    assert np.isnan(out["fits"][2].integrated_od) and out["fits"][2].label is None
    np.testing.assert_array_equal(det["masks"][0], detection(clouds, shift=2)["masks"][0])


def test_ring_seed_places_rings_and_arcs_and_the_fit_finishes_the_job():
    crescent = Cloud("other", 48.0, 46.0, 20.0, 20.0, 0.0, 1.2, ring_width=3.0, crescent=3.0,
                     crescent_angle=0.8)
    for cloud in (RING, crescent):
        seed = joint_fit.ring_seed(render_od([cloud], SHAPE), cloud.mask(SHAPE), 0.0)
        # a 140-degree arc pulls the algebraic circle fit in (measured: 0.16 of the radius)
        assert np.hypot(seed.x0 - cloud.x0, seed.y0 - cloud.y0) < 0.2 * cloud.wx
        assert seed.wx == pytest.approx(np.sqrt(cloud.wx * cloud.wy), rel=0.15)
        assert seed.width == pytest.approx(cloud.ring_width, rel=0.35)
    assert seed.crescent > 0 and abs(angle_difference(seed.crescent_angle, 0.8)) < 0.2
    out = refine.refine_detection(shot([crescent], seed=7), detection([crescent], shift=1),
                                  CLASSES)
    assert out["fits"][0] is not None
    assert iou(out["masks"][0] > 0.5, crescent.mask(SHAPE)) > 0.9


def test_duplicates_follow_their_original_and_wandering_fits_are_rejected():
    image = shot([MOT], seed=5)
    det = detection([MOT, MOT], scores=[0.9, 0.7])
    det["labels"][1] = CLASSES.index("BEC") + 1  # the same cloud, also called a BEC
    out = refine.refine_detection(image, det, CLASSES)
    assert out["fits"][1] is out["fits"][0]
    np.testing.assert_array_equal(out["masks"][0], out["masks"][1])
    # a mask on empty background: the fit cannot reproduce it, so the mask is kept
    empty = shot([], seed=6)
    fake = detection([MOT])
    out = refine.refine_detection(empty, fake, CLASSES)
    assert out["fits"][0] is None
    np.testing.assert_array_equal(out["masks"][0], fake["masks"][0])
    # low scores are not fitted, and nothing detected is nothing refined
    low = refine.refine_detection(image, detection([MOT], scores=[0.2]), CLASSES)
    assert low["fits"] == [None]
    none = refine.refine_detection(image, {k: v[:0] for k, v in detection([MOT]).items()},
                                   CLASSES)
    assert none["fits"] == []


def test_model_selection_drops_a_second_profile_on_one_cloud_and_keeps_real_pairs():
    # one MOT found twice: as a MOT and, with a mask shrunk to 0.75 of its radii (IoU 0.56,
    # not a duplicate by the masks), as a BEC
    image = shot([MOT], seed=8)
    inner = Cloud("BEC", MOT.x0 + 1.0, MOT.y0, 0.75 * MOT.wx, 0.75 * MOT.wy, MOT.theta, 0.6,
                  1.0, 1.0, 0.1)
    det = detection([MOT, inner], scores=[0.95, 0.9])
    assert iou(det["masks"][0] > 0.5, det["masks"][1] > 0.5) < 0.7
    rng = np.random.default_rng(9)
    seeds = [perturbed(MOT, rng), perturbed(inner, rng, 0.6)]
    assert len(refine.select_clouds(image, seeds, ["MOT", "BEC"])) == 1
    both, _ = joint_fit.joint_fit(image, seeds, ["MOT", "BEC"])
    out = refine.refine_detection(image, det, CLASSES)
    assert out["fits"][0] is out["fits"][1]  # both rows describe the one fitted cloud
    g = out["fits"][0].gaussian
    assert abs(g.x0 - MOT.x0) < 0.2 and abs(g.y0 - MOT.y0) < 0.2
    assert g.wx == pytest.approx(MOT.wx, rel=0.03) and g.wy == pytest.approx(MOT.wy, rel=0.03)
    # the two-profile fit shares the cloud's light between them: neither is the MOT
    assert not (both[0].gaussian.amplitude == pytest.approx(MOT.od_peak, rel=0.05)
                and both[0].gaussian.wx == pytest.approx(MOT.wx, rel=0.03))
    # an ODT through the MOT is a second cloud, and stays one
    pair = shot([MOT, ODT], seed=10)
    fits = refine.select_clouds(pair, [perturbed(MOT, rng), perturbed(ODT, rng)],
                                ["MOT", "ODT"])
    assert [f.kind for f in fits] == ["MOT", "ODT"]
    assert iou(fits[1].mask(SHAPE), ODT.mask(SHAPE)) > 0.9


def test_assignment_follows_the_light_not_the_order_of_the_fits():
    image = shot([MOT, ODT], seed=11)
    rng = np.random.default_rng(12)
    fits, _ = joint_fit.joint_fit(image, [perturbed(MOT, rng), perturbed(ODT, rng)],
                                  ["MOT", "ODT"])
    masks = np.stack([MOT.mask(SHAPE), ODT.mask(SHAPE)])
    # the fits handed over swapped (a model selection may leave them so)
    out = refine._assign(fits[::-1], ["MOT", "ODT"], masks, SHAPE, 0.6)
    assert out[0] is fits[0] and out[1] is fits[1]
    # a ring's profile never describes a Gaussian detection
    assert refine._assign(fits, ["other", "other"], masks, SHAPE, 0.6) == {}


def test_local_refit_of_a_ring_with_an_empty_label():
    # a crescent at the frame's edge whose bright arc lies outside it: no pixel reaches e^-2
    # of its peak, so its label and box are empty; its pair is still testable
    edge_ring = joint_fit.CloudFit("other", (3.0, 60.0, 10.0, 10.0, 0.0, 0.3, 1.0, 9.0, np.pi),
                                   0.05)
    assert not edge_ring.mask(SHAPE).any()
    assert list(edge_ring.box(SHAPE)) == [0.0, 0.0, 0.0, 0.0]
    mot = joint_fit.CloudFit("MOT", (8.0, 60.0, 12.0, 10.0, 0.0, 0.5), 0.05)
    image = shot([Cloud("MOT", 8.0, 60.0, 12.0, 10.0, 0.0, 0.5)])
    problem = joint_fit._problem(SHAPE, [Gaussian2D(8.0, 60.0, 12.0, 10.0, 0.0, 0.5, 0.05),
                                         joint_fit.RingSeed(4.0, 60.0, 10.0, 10.0, 0.0, 0.1,
                                                            2.0, 0.0, 0.0)], ["MOT", "other"])
    p = np.r_[0.05, mot.params, edge_ring.params]
    local = problem.local(p, [mot, edge_ring], [0, 1], SHAPE)
    assert local.region.sum() > 2 * local.start.size
    fits, result = joint_fit._solve(image, local, 10)
    assert [f.kind for f in fits] == ["MOT", "other"] and np.all(np.isfinite(result.x))


def test_significance_weighs_a_cloud_against_the_frame_structure_at_its_scale():
    rng = np.random.default_rng(13)
    y, x = np.mgrid[:SHAPE[0], :SHAPE[1]] + 0.5
    fringes = 0.05 * np.sin(2 * np.pi * (x + 0.3 * y) / 24.0)  # a probe's fringes, 24 px
    blob = Cloud("MOT", 40.0, 40.0, 8.0, 8.0, 0.0, 0.06)  # a fringe-sized bump
    real = Cloud("MOT", 40.0, 40.0, 8.0, 8.0, 0.0, 0.6)
    for cloud, low, high in ((blob, 0.0, 5.0), (real, 5.0, np.inf)):
        image = 0.02 + fringes + render_od([cloud], SHAPE) + rng.normal(0, 0.01, SHAPE)
        fit = joint_fit.CloudFit("MOT", (cloud.x0, cloud.y0, cloud.wx, cloud.wy, 0.0,
                                         cloud.od_peak), 0.02)
        (z,) = refine.significance(image, [fit])
        assert low <= z < high, (cloud.od_peak, z)
    # white noise alone: std of the matched-filter amplitude is sigma_px / (sqrt(pi) sigma)
    image = 0.02 + render_od([real], SHAPE) + rng.normal(0, 0.01, SHAPE)
    (z,) = refine.significance(image, [joint_fit.CloudFit("MOT",
                                                          (40.0, 40.0, 8.0, 8.0, 0.0, 0.6),
                                                          0.02)])
    assert z == pytest.approx(0.6 / (0.01 / (np.sqrt(np.pi) * 4.0)), rel=0.3)
    # refine_detection keeps only fits above min_significance (z of this one: about 380)
    assert refine.refine_detection(image, detection([real]), CLASSES)["fits"][0] is not None
    assert refine.refine_detection(image, detection([real]), CLASSES,
                                   min_significance=1e4)["fits"] == [None]
