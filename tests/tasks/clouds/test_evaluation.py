"""The Gaussian-parameter comparison (Sec. 5, Fig. 7h) apart for isolated and overlapping
clouds."""

import numpy as np

from retroscope.core.registry import get_task
from retroscope.tasks.clouds.evaluation import gaussian_comparison
from retroscope.tasks.clouds.task import CLOUD_COLUMNS, MAX_CLOUDS


def test_comparison_separates_overlapping_clouds():
    task = get_task("clouds").with_config(shape=[64, 64])
    table = np.zeros((MAX_CLOUDS, len(CLOUD_COLUMNS)), np.float32)
    table[0, :7] = [1, 16.0, 16.0, 6.0, 5.0, 0.0, 1.0]  # a MOT ...
    table[1, :7] = [2, 25.0, 18.0, 10.0, 3.0, 0.2, 1.5]  # ... crossed by an ODT
    table[2, :7] = [1, 46.0, 46.0, 6.0, 6.0, 0.0, 1.0]  # a MOT alone
    truth = task.true_objects({"clouds": table}, None)
    image = sum(t["gaussian"].render((64, 64)) for t in truth)
    det = {"boxes": np.stack([t["box"] for t in truth]).astype(np.float32),
           "scores": np.ones(3), "labels": np.array([1, 2, 1]),
           "masks": np.stack([t["mask"] for t in truth]).astype(float)}
    objects = task.describe_objects(image[None], det)
    pairs = [[(k, k, 1.0) for k in range(3)]]
    result = gaussian_comparison([image], [truth], [objects], pairs, max_fits=0,
                                 refined=([objects], pairs))
    alone, crossed = result["by_overlap"]["isolated"], result["by_overlap"]["overlapping"]
    assert (alone["clouds"], crossed["clouds"]) == (1, 2)
    assert result["joint_fit"]["by_overlap"]["overlapping"]["clouds"] == 2
    # noiseless: the lone cloud's box moments sit on its centre; the neighbour's light pulls
    # the crossed clouds' box moments by a visible fraction of their size
    conv_alone, conv_crossed = alone["rmse"]["conventional"], crossed["rmse"]["conventional"]
    assert max(conv_alone["x0"], conv_alone["y0"]) < 1e-3
    assert max(conv_crossed["x0"], conv_crossed["y0"]) > 0.02
    # the subsets' squared errors add up to the whole
    whole = result["rmse"]["conventional"]["truth"]["x0"] ** 2 * 3
    parts = conv_alone["x0"] ** 2 + 2 * conv_crossed["x0"] ** 2
    assert np.isclose(whole, parts)
