"""Fringe removal (Ockeloen et al. 2010) on simulated frames: exactness, noise reduction, errors."""

import numpy as np
import pytest

from retroscope.tasks.clouds.fringes import FringeRemover, od_with_fringe_removal
from retroscope.tasks.clouds.frames import Camera, absorption_shot, sample_probe
from retroscope.tasks.clouds.optical_depth import optical_depth
from retroscope.tasks.clouds.profiles import Cloud

SHAPE = (64, 80)
CLOUD = Cloud("MOT", 40.0, 32.0, 9.0, 7.0, 0.4, 1.5)
ATOM_FREE = ~Cloud("MOT", 40.0, 32.0, 20.0, 16.0, 0.4).mask(SHAPE)  # 2x the 1/e^2 ellipse
CAMERA = Camera(gain_counts_per_e=1.0, quantum_efficiency=0.8, read_noise_e=3.0,
                dark_offset_counts=100.0)


def fringy_probe(seed):
    """A bright probe with two plane fringes and one dust ring (a 5-dimensional span)."""
    return sample_probe(np.random.default_rng(seed), SHAPE, peak_counts=(30_000, 30_000),
                        waist_frac=(1.5, 1.5), n_plane=(2, 2), plane_contrast=(0.04, 0.06),
                        n_rings=(1, 1), ring_extent_px=(40, 60), phase_jitter_rad=1.0)


def simulated_series(seed, n_probes):
    """One absorption shot plus ``n_probes`` further probe frames of the same beam."""
    rng = np.random.default_rng(seed)
    probe = fringy_probe(seed)
    shot = absorption_shot(CLOUD.od(SHAPE), probe, CAMERA, rng)
    photons = [probe.jittered(rng).intensity_counts(SHAPE) / CAMERA.counts_per_photon
               for _ in range(n_probes)]
    return shot, np.stack([CAMERA.expose(p, rng) for p in photons])


def test_reference_is_exact_for_noise_free_frames_in_the_span():
    rng = np.random.default_rng(0)
    probe = fringy_probe(0)
    basis = np.stack([probe.jittered(rng).intensity_counts(SHAPE) for _ in range(8)])
    truth = probe.jittered(rng).intensity_counts(SHAPE)
    atoms = truth * np.exp(-np.where(ATOM_FREE, 0.0, CLOUD.od(SHAPE)))  # no far Gaussian tail
    reference = FringeRemover(basis).reference(atoms, ATOM_FREE)
    np.testing.assert_allclose(reference, truth, rtol=1e-8)
    pca = FringeRemover(basis, n_components=6).reference(atoms, ATOM_FREE)
    np.testing.assert_allclose(pca, truth, rtol=1e-8)
    dark = np.full(SHAPE, 100.0)
    with_dark = FringeRemover(basis + dark, dark=dark).reference(atoms + dark, ATOM_FREE)
    np.testing.assert_allclose(with_dark, truth, rtol=1e-8)


@pytest.mark.parametrize("n_components", [None, 6])
def test_fringe_removal_reduces_od_noise_in_the_atom_free_region(n_components):
    shot, probes = simulated_series(1, 12)
    od_own, _ = optical_depth(**shot)
    od_fr, flags = od_with_fringe_removal(shot["atoms"], probes, shot["dark"], ATOM_FREE,
                                          n_components=n_components)
    ratio = od_own[ATOM_FREE].std() / od_fr[ATOM_FREE].std()
    assert ratio > 2.0, ratio
    assert not flags.any()
    # the cloud is still measured: mean OD over its 1/e^2 ellipse within 2 %
    inside = CLOUD.mask(SHAPE)
    assert od_fr[inside].mean() == pytest.approx(CLOUD.od(SHAPE)[inside].mean(), rel=0.02)


def test_fringe_remover_errors():
    probes = np.ones((3, 4, 5))
    with pytest.raises(ValueError, match=r"\(K, H, W\) with K >= 1"):
        FringeRemover(np.ones((0, 4, 5)))
    with pytest.raises(ValueError, match=r"\(K, H, W\)"):
        FringeRemover(np.ones((4, 5)))
    with pytest.raises(ValueError, match="n_components"):
        FringeRemover(probes, n_components=3)
    with pytest.raises(ValueError, match="dark has shape"):
        FringeRemover(probes, dark=np.ones((5, 4)))
    remover = FringeRemover(probes)
    with pytest.raises(ValueError, match="atoms has shape"):
        remover.reference(np.ones((4, 6)), np.ones((4, 6), bool))
    with pytest.raises(ValueError, match="mask has shape"):
        remover.reference(np.ones((4, 5)), np.ones((4, 6), bool))
    few = np.zeros((4, 5), bool)
    few[0, :2] = True
    with pytest.raises(ValueError, match="2 atom-free pixels, fewer than the 3"):
        remover.reference(np.ones((4, 5)), few)
