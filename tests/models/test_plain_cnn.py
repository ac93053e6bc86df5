"""The plain CNN of Shvetsov-Shilovski & Lein (2023), Fig. 1, and the MLP for curves: sizes,
parameter counts and the shared model interface."""

import pytest
import torch

from retroscope.models import build_model


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_the_papers_cnn_has_38657_parameters():
    """5 x [conv 3x3, 32, BN, ReLU, avg-pool 2] on 1 x 256 x 128, dropout 0.2, one output:
    37 312 (convolutions) + 320 (batch norms) + 1 025 (final layer on 8 x 4 x 32)."""
    model = build_model("plain_cnn", out_dim=1)
    assert n_params(model) == 38_657
    assert model.feature_dim == 1024
    x = torch.randn(3, 1, 256, 128)
    assert model.embed(x).shape == (3, 1024) and model(x).shape == (3, 1)
    hetero = build_model("plain_cnn", out_dim=1, head="heteroscedastic")
    assert hetero(x).shape == (3, 2) and n_params(hetero) == 38_657 + 1_025


def test_one_dimensional_variants():
    cnn = build_model("plain_cnn", dims=1, input_size=[256], out_dim=1)
    assert cnn(torch.randn(4, 1, 256)).shape == (4, 1) and cnn.feature_dim == 32 * 8
    mlp = build_model("mlp", input_size=[256], out_dim=1)
    assert mlp(torch.randn(4, 1, 256)).shape == (4, 1)
    assert n_params(mlp) == (256 * 512 + 512) + 2 * (512 * 512 + 512) + 3 * 1024 + 513
    rebuilt = build_model("plain_cnn", **cnn.config, out_dim=1)
    assert n_params(rebuilt) == n_params(cnn)


def test_sizes_that_do_not_halve_are_refused():
    with pytest.raises(ValueError, match="does not halve"):
        build_model("plain_cnn", input_size=[100, 64])
    with pytest.raises(ValueError, match="dims must be"):
        build_model("plain_cnn", dims=1, input_size=[256, 128])
