"""Real absorption triplets of a ring BEC (sbanik1/Probe-Reconstruction, MIT; see
../shared/data/README.md): reading, optical depth and leave-one-out fringe removal."""

from pathlib import Path

import numpy as np
import pytest

from retroscope.tasks.clouds.fringes import atom_free_mask, od_with_fringe_removal
from retroscope.tasks.clouds.optical_depth import optical_depth
from retroscope.tasks.clouds.shots import find_triplets, load_shot

DATA = Path(__file__).resolve().parents[4] / "shared" / "data" / "clouds" / "probe-reconstruction"


@pytest.fixture(scope="module")
def series():
    if not DATA.is_dir():
        pytest.skip(f"real data folder {DATA} absent")
    shots, problems = find_triplets(DATA)
    return shots, problems, [load_shot(shot) for shot in shots]


def test_twelve_complete_triplets(series):
    shots, problems, frames = series
    assert problems == []
    assert [s.id for s in shots] == [f"2020_11_24_{n:04d}" for n in range(145, 157)]
    assert all(set(f) == {"atoms", "probe", "dark"} for f in frames)
    assert all(f["atoms"].shape == (512, 512) for f in frames)


def test_od_is_finite_and_rises_across_the_series(series):
    _, _, frames = series
    top = []
    for f in frames:
        od, flags = optical_depth(**f, saturation_counts=2**16 - 1)
        assert np.all(np.isfinite(od))
        assert np.count_nonzero(flags) < 0.001 * od.size
        top.append(np.percentile(od, 99.9))
    top = np.array(top)
    print("99.9th percentile of OD:", np.round(top, 2))
    assert 0.3 < top[0] < 0.5 and 2.0 < top[-1] < 2.6  # README: about 0.4 -> 2.3
    assert top[-3:].min() > 4 * top[:3].max()
    assert np.corrcoef(np.argsort(np.argsort(top)), np.arange(len(top)))[0, 1] > 0.9


def test_leave_one_out_fringe_removal_reduces_od_noise(series):
    _, _, frames = series
    factors, fractions = [], []
    for k, f in enumerate(frames):
        own, _ = optical_depth(**f)
        free = atom_free_mask(own)
        others = np.stack([g["probe"] for j, g in enumerate(frames) if j != k])
        cleaned, _ = od_with_fringe_removal(f["atoms"], others, f["dark"], free)
        factors.append(own[free].std() / cleaned[free].std())
        fractions.append(free.mean())
    factors = np.array(factors)
    print(f"OD std reduction per shot: {np.round(factors, 2)}; mean {factors.mean():.3f}; "
          f"atom-free fraction mean {np.mean(fractions):.3f} "
          f"(min {np.min(fractions):.3f})")
    assert np.all(factors > 1.1)
    assert factors.mean() > 1.2
