"""The geometry learner's pieces: EDM preconditioning and sampler, the set model's
permutation equivariance, the momentum frame, the permutation-min assignment."""

import math

import numpy as np
import torch

from retroscope.learners.geometry.edm import EDM
from retroscope.learners.geometry.module import (GeometryModule, GeometryNetwork, assign_undetected,
                                                 to_frame)
from retroscope.models.ion_transformer import momentum_frame


def test_edm_preconditioning_at_sigma_data():
    edm = EDM()
    c_skip, c_out, c_in, c_noise = edm.preconditioning(torch.tensor([edm.sigma_data]))
    assert float(c_skip) == torch.tensor(0.5).item()
    assert math.isclose(float(c_in), 1 / (edm.sigma_data * math.sqrt(2)), rel_tol=1e-6)
    assert math.isclose(float(c_out), edm.sigma_data / math.sqrt(2), rel_tol=1e-6)
    assert math.isclose(float(c_noise), math.log(edm.sigma_data) / 4, rel_tol=1e-6)
    # lambda(sigma) c_out^2 = 1: every noise level weighs the same
    s = torch.tensor([0.01, 0.3, 5.0])
    assert torch.allclose(edm.loss_weight(s) * edm.preconditioning(s)[1] ** 2, torch.ones(3))
    sched = edm.schedule(10)
    assert len(sched) == 11 and math.isclose(float(sched[0]), 80.0)
    assert math.isclose(float(sched[-2]), 0.002, rel_tol=1e-9) and float(sched[-1]) == 0.0
    ln_sigma = torch.log(edm.training_sigma(20000, torch.Generator().manual_seed(0)))
    assert abs(float(ln_sigma.mean()) + 1.2) < 0.03 and abs(float(ln_sigma.std()) - 1.2) < 0.03


def test_sampler_with_the_ideal_denoiser_finds_a_point_mass():
    # data that is one point: the optimal denoiser answers it at every noise level, and the
    # probability-flow ODE must end there
    edm = EDM()
    target = torch.tensor([[[0.1, -0.2, 0.05]]])
    out = edm.sample(lambda x, s: target.expand_as(x), (4, 1, 3), torch.ones(4, 1, dtype=bool),
                     torch.Generator().manual_seed(0))
    assert torch.allclose(out, target.expand(4, 1, 3), atol=1e-4)


def events(b=6, n=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.tensor([8, 6, 1, 1, 1, 17, 0, 0, 0, 0], dtype=torch.float32)[:n]
    q = torch.tensor([2, 3, 1, 1, 1, 5, 0, 0, 0, 0], dtype=torch.float32)[:n]
    p = torch.randn(b, n, 3, generator=g) * 50 * (z > 0)[None, :, None]
    return torch.cat([z.expand(b, n)[..., None], q.expand(b, n)[..., None], p], -1)


def randomised_network():
    torch.manual_seed(1)
    net = GeometryNetwork("ion_transformer", {"dim": 32, "depth": 2, "heads": 4,
                                              "denoiser_depth": 1})
    with torch.no_grad():   # the output layer starts at zero: give it weights to test
        net.body.denoiser.out.weight.normal_()
    return net.eval()


def test_network_is_permutation_equivariant():
    net = randomised_network()
    ions = events()
    x = torch.randn(6, 10, 3)
    sigma = torch.full((6,), 0.3)
    frame_ions, _ = net.frame(ions)
    out = net.denoise(x, sigma, *net.condition(frame_ions))
    assert out.abs().max() > 0 and not out[:, 6:].any()      # padding stays zero
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(3))
    frame_perm, _ = net.frame(ions[:, perm])
    out_perm = net.denoise(x[:, perm], sigma, *net.condition(frame_perm))
    assert torch.allclose(out_perm, out[:, perm], atol=1e-5)


def test_frame_turns_inputs_and_is_invariant_to_lab_rotations():
    ions = events()
    rot = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(4)))[0]
    rot = rot * torch.sign(torch.linalg.det(rot))
    turned = torch.cat([ions[..., :2], ions[..., 2:] @ rot.T], -1)
    a = to_frame(ions, momentum_frame(ions))
    b = to_frame(turned, momentum_frame(turned))
    assert torch.allclose(a, b, atol=1e-3)
    chlorine = 5    # highest Z: its momentum is the frame's +x axis
    assert torch.allclose(a[:, chlorine, 3:], torch.zeros(6, 2), atol=1e-3)
    assert (a[:, chlorine, 2] > 0).all()


def test_undetected_identical_atoms_take_the_closest_assignment():
    ions = events(b=1)
    ions[0, 3:5, 1:] = 0.0                      # two hydrogens not detected
    target = torch.zeros(1, 10, 3)
    target[0, 3] = torch.tensor([1.0, 0, 0])
    target[0, 4] = torch.tensor([-1.0, 0, 0])
    pred = target.clone()
    pred[0, 3], pred[0, 4] = target[0, 4] * 0.9, target[0, 3] * 0.9   # swapped
    aligned = assign_undetected(pred, target, ions)
    assert torch.equal(aligned[0, 3], target[0, 4]) and torch.equal(aligned[0, 4], target[0, 3])
    # a detected atom is never reassigned
    ions[0, 4, 1] = 1.0
    assert torch.equal(assign_undetected(pred, target, ions), target)


def test_regressor_answers_once_and_fits_a_batch():
    torch.manual_seed(2)
    net = GeometryNetwork("ion_transformer", {"dim": 32, "depth": 1, "heads": 4,
                                              "denoiser_depth": 1}, objective="regression")
    module = GeometryModule(net, lr=3e-3, epochs=1, steps_per_epoch=200)
    ions = events(b=8)
    positions = torch.randn(8, 10, 3) * 3.0 * (ions[..., :1] > 0)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        loss = module._regression_loss(*module._inputs((ions, positions)))
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.1 * first
    net.eval()
    samples = net.sample(ions, k=3)               # (B, k, N, 3), momentum frame, bohr
    assert torch.equal(samples[:, 0], samples[:, 2])
    _, rotation = net.frame(ions)
    true_frame = torch.einsum("bij,bnj->bni", rotation, positions)
    real = ions[..., 0] > 0
    assert (samples[:, 0] - true_frame)[real].abs().mean() < 0.3 * true_frame[real].abs().mean()
    assert not samples[:, 0][~real].any()
