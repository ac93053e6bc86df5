"""The attribution methods of retroscope.explain (captum 0.9) on hand-built networks whose
answer is known, and on a random plain CNN of the project's registry."""

import numpy as np
import pytest
import torch
from torch import nn

from retroscope.explain.maps import TargetOutput, target_column
from retroscope.explain.methods import (
    METHODS,
    attribute_model,
    last_conv,
    occlusion_window,
    superpixels,
)
from retroscope.models import build_model

H, W = 32, 16


class TopLeft(nn.Module):
    """The mean of the top-left quadrant of the first channel: nothing else matters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, : x.shape[2] // 2, : x.shape[3] // 2].mean(dim=(1, 2))


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0.5, 1.5, (2, 1, H, W)).astype(np.float32)


@pytest.fixture(scope="module")
def cnn():
    """A random plain CNN with a heteroscedastic head, reduced to its second target's mean."""
    torch.manual_seed(0)
    network = build_model("plain_cnn", input_size=(H, W), width=4, n_blocks=3, out_dim=2,
                          head="heteroscedastic")
    return TargetOutput(network, 1)


def test_occlusion_window_scales_with_the_input():
    assert occlusion_window(256, 128) == ((32, 16), (16, 8))
    assert occlusion_window(512, 256) == ((64, 32), (32, 16))
    assert occlusion_window(32, 16) == ((4, 2), (2, 1))
    assert occlusion_window(5, 3) == ((1, 1), (1, 1))


def test_occlusion_finds_the_only_region_the_network_reads(images):
    maps = attribute_model(TopLeft(), images, "occlusion")
    assert maps.shape == (2, H, W) and maps.dtype == np.float32
    (wh, ww), _ = occlusion_window(H, W)
    # a window that reaches the quadrant lowers the answer; one that does not, never
    assert np.all(maps[:, : H // 2, : W // 2] > 0)
    outside = np.ones((H, W), bool)
    outside[: H // 2 + wh - 1, : W // 2 + ww - 1] = False
    assert np.all(maps[:, outside] == 0)


def test_lime_weights_the_region_the_network_reads(images):
    maps = attribute_model(TopLeft(), images, "lime", grid=(8, 8))
    assert maps.shape == (2, H, W) and np.any(maps != 0)  # captum's Lasso would give zeros
    inside = np.abs(maps[:, : H // 2, : W // 2]).mean()
    outside = np.abs(maps[:, H // 2:, :]).mean()
    assert inside > 10 * outside
    again = attribute_model(TopLeft(), images[::-1].copy(), "lime", grid=(8, 8))
    np.testing.assert_array_equal(again[::-1], maps)  # seeded per image: reproducible


@pytest.mark.parametrize("method", METHODS)
def test_every_method_maps_a_cnn_input_to_its_size(cnn, images, method):
    maps = attribute_model(cnn, images, method)
    assert maps.shape == (2, H, W) and maps.dtype == np.float32
    assert np.all(np.isfinite(maps)) and np.any(maps != 0)


def test_gradcam_reads_the_last_convolution(cnn):
    assert last_conv(cnn) is cnn.network.blocks[-1][0]
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        last_conv(TopLeft())


def test_superpixels_are_a_regular_grid():
    mask = superpixels(256, 128)
    assert mask.shape == (256, 128) and mask.unique().numel() == 64
    assert mask[0, 0] == 0 and mask[31, 15] == 0 and mask[32, 0] == 8 and mask[0, 16] == 1
    assert superpixels(13, 5).unique().numel() == 8 * 5  # a short side: one block per pixel


def test_target_output_keeps_one_column_of_the_mean(cnn, images):
    x = torch.from_numpy(images)
    mean, _ = torch.split(cnn.network(x), 2, dim=1)
    torch.testing.assert_close(cnn(x), mean[:, 1])
    assert not cnn.training
    assert target_column(("a", "b"), "b") == 1 and target_column(("a", "b"), None) == 0
    with pytest.raises(ValueError, match="unknown target 'c'"):
        target_column(("a", "b"), "c")


def test_an_unknown_method_is_refused(images):
    with pytest.raises(ValueError, match="occlusion, gradcam, lime"):
        attribute_model(TopLeft(), images, "shap")
