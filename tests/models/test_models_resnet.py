"""Model registry and ResNet builders: shapes, parameter counts, activations, heads."""

import pytest
import torch
import torchvision
from torch import nn

from retroscope.models import build_model, list_models, register_model, split_mean_logvar


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registry_lists_and_rejects():
    assert {"resnet18", "resnet34", "resnet50", "stielow34"} <= set(list_models())
    with pytest.raises(KeyError, match="resnet18"):
        build_model("no-such-net")
    with pytest.raises(ValueError, match="already registered"):
        register_model("resnet18")(lambda **cfg: nn.Identity())


@pytest.mark.parametrize(
    "name, reference",
    [("resnet18", torchvision.models.resnet18), ("resnet50", torchvision.models.resnet50)],
)
def test_parameter_count_matches_torchvision_with_one_channel_stem(name, reference):
    # same blocks and widths; the 1-channel stem has 2 * 64 * 7 * 7 fewer weights than RGB
    ours = build_model(name, out_dim=1000, head="classification")
    assert n_params(ours) == n_params(reference(num_classes=1000)) - 2 * 64 * 7 * 7
    assert set(ours.state_dict()) == set(reference().state_dict())


def test_stielow34_architecture():
    net = build_model("stielow34", out_dim=5)
    # resnet34 has stacks (3, 4, 6, 3) and no projection in stack 1; stielow34 adds a fourth
    # 512-filter block (two 3x3 convs + two BNs) and a 1x1 projection (+ BN) in stack 1
    extra = 2 * (9 * 512 * 512 + 2 * 512) + (64 * 64 + 2 * 64)
    assert n_params(net) == n_params(build_model("resnet34", out_dim=5)) + extra
    assert net.conv1.kernel_size == (7, 7) and net.conv1.stride == (2, 2)
    assert net.conv1.out_channels == 64
    assert net.maxpool.kernel_size == 2 and net.maxpool.stride == 2
    assert [len(s) for s in (net.layer1, net.layer2, net.layer3, net.layer4)] == [3, 4, 6, 4]
    for stack, width in zip((net.layer1, net.layer2, net.layer3, net.layer4), (64, 128, 256, 512)):
        assert stack[0].conv1.stride == (2, 2) and stack[0].downsample is not None
        assert stack[-1].conv2.out_channels == width
    assert net.feature_dim == 512 and net.fc.in_features == 512 and net.fc.out_features == 5
    assert not any(isinstance(m, nn.ReLU) for m in net.modules())
    assert sum(isinstance(m, nn.Tanh) for m in net.modules()) == 1 + 17


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "stielow34"])
@pytest.mark.parametrize("size", [(37, 31), (128, 128)])
def test_output_shapes_for_odd_sizes(name, size):
    net = build_model(name, out_dim=3, base_width=8, input_size=size).eval()
    x = torch.randn(2, 1, *size)
    with torch.no_grad():
        assert net(x).shape == (2, 3)
        assert net.embed(x).shape == (2, net.feature_dim)
    assert net.input_size == size


def test_heads():
    x = torch.randn(2, 1, 24, 20)
    het = build_model("resnet18", out_dim=4, head="heteroscedastic", base_width=8, stem="small")
    mean, logvar = split_mean_logvar(het.eval()(x))
    assert mean.shape == logvar.shape == (2, 4) and het.out_dim == 4
    cls = build_model("resnet18", out_dim=7, head="classification", base_width=8, stem="small")
    assert cls.eval()(x).shape == (2, 7)
    with pytest.raises(ValueError, match="head must be one of"):
        build_model("resnet18", head="bayesian")


def test_small_stem_keeps_resolution():
    net = build_model("resnet18", base_width=8, stem="small")
    assert net.conv1.stride == (1, 1) and net.conv1.kernel_size == (3, 3)
    assert isinstance(net.maxpool, nn.Identity)


def test_tanh_replaces_every_relu_and_in_channels():
    net = build_model("resnet50", activation="tanh", in_channels=2, base_width=8)
    assert not any(isinstance(m, nn.ReLU) for m in net.modules())
    assert any(isinstance(m, nn.Tanh) for m in net.modules())
    assert net.eval()(torch.randn(1, 2, 40, 40)).shape == (1, 1)


def test_base_width_32_has_about_a_quarter_of_the_parameters():
    for name in ("resnet18", "resnet34", "stielow34"):
        ratio = n_params(build_model(name, base_width=32)) / n_params(build_model(name))
        assert 0.24 < ratio < 0.27


def test_dropout_before_head_and_config_rebuilds():
    net = build_model("resnet18", out_dim=2, base_width=8, dropout=0.3, input_size=64)
    assert net.dropout.p == 0.3 and net.input_size == (64, 64)
    clone = build_model("resnet18", **net.config)
    clone.load_state_dict(net.state_dict())
    x = torch.randn(2, 1, 64, 64)
    torch.testing.assert_close(clone.eval()(x), net.eval()(x))
