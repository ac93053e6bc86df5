"""Real absorption triplets of a ring BEC (sbanik1/Probe-Reconstruction, MIT; see
../shared/data/README.md): reading, optical depth, leave-one-out fringe removal, how much ring
each frame holds, and (slow, with a trained run) what the detector finds on each frame."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from retroscope.tasks.clouds.fringes import atom_free_mask, od_with_fringe_removal
from retroscope.tasks.clouds.optical_depth import optical_depth
from retroscope.tasks.clouds.photometry import template_photometry, template_region
from retroscope.tasks.clouds.shots import find_triplets, load_shot

DATA = Path(__file__).resolve().parents[4] / "shared" / "data" / "clouds" / "probe-reconstruction"
RUN = os.environ.get("RETROSCOPE_CLOUDS_RUN")  # a trained clouds run, for the slow test


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


@pytest.fixture(scope="module")
def cleaned(series):
    """Per frame: its own OD, its atom-free mask and its OD with the reference probe fitted
    from the other 11 probe frames (leave-one-out fringe removal)."""
    _, _, frames = series
    out = []
    for k, f in enumerate(frames):
        own, _ = optical_depth(**f)
        free = atom_free_mask(own)
        others = np.stack([g["probe"] for j, g in enumerate(frames) if j != k])
        out.append((own, free, od_with_fringe_removal(f["atoms"], others, f["dark"], free)[0]))
    return out


def test_leave_one_out_fringe_removal_reduces_od_noise(cleaned):
    factors = np.array([own[free].std() / od[free].std() for own, free, od in cleaned])
    fractions = [free.mean() for _, free, _ in cleaned]
    print(f"OD std reduction per shot: {np.round(factors, 2)}; mean {factors.mean():.3f}; "
          f"atom-free fraction mean {np.mean(fractions):.3f} "
          f"(min {np.min(fractions):.3f})")
    assert np.all(factors > 1.1)
    assert factors.mean() > 1.2


@pytest.fixture(scope="module")
def ring(series, cleaned):
    """Per shot id, how many noise levels the ring of the last three frames stands above the
    rest of the fringe-removed frame (template photometry); the ring's centre (x, y) px."""
    shots = series[0]
    ods = [od for _, _, od in cleaned]
    region = template_region(ods[-3:])
    rows, cols = np.nonzero(region)
    return ({s.id: template_photometry(od, region)["significance"]
             for s, od in zip(shots, ods)}, (cols.mean() + 0.5, rows.mean() + 0.5))


def test_ring_photometry_separates_frames_with_and_without_atoms(ring):
    sig, centre = ring
    print({k[-4:]: round(v, 1) for k, v in sig.items()})
    assert sig["2020_11_24_0145"] < 2  # no atoms seen: 0.6 sigma
    assert 4 < sig["2020_11_24_0146"] < 10  # the faint ring, visible by eye after smoothing
    assert sum(v > 15 for v in sig.values()) == 9  # 0147 and 0149-0156
    assert np.allclose(centre, (352, 351), atol=3)  # px; radius about 98 px


@pytest.mark.slow
def test_a_trained_run_finds_one_object_on_every_frame_with_atoms(ring, tmp_path):
    """The data README: one object per frame, and no confident MOT/ODT. With a trained run
    (``RETROSCOPE_CLOUDS_RUN``; the benchmark's is a 55-minute CPU run), every frame whose
    ring stands >= 5 noise levels above the frame gives exactly one object of confidence
    >= 0.5, an "other" centred on the ring; frames with no measurable ring (< 3 noise levels)
    give none; no frame gives a confident MOT or ODT."""
    if not RUN:
        pytest.skip("set RETROSCOPE_CLOUDS_RUN to a trained clouds run")
    from retroscope.infer.batch import predict_files

    settings = tmp_path / "real.json"
    settings.write_text(json.dumps({"fringe_removal": True}))
    rows, failures = predict_files(Path(RUN), [DATA], settings=settings)
    assert failures == []
    confident = {}
    for row in rows:
        confident.setdefault(Path(row["input"]).name, [])
        if row["n_objects"] and row["duplicate_of"] < 0 and row["confidence"] >= 0.5:
            confident[Path(row["input"]).name].append(row)
    significance, ring_centre = ring
    assert sorted(confident) == sorted(significance)
    for shot, found in confident.items():
        assert all(r["class"] not in ("MOT", "ODT") for r in found), (shot, found)
        if significance[shot] >= 5:
            assert len(found) == 1 and found[0]["class"] == "other", (shot, found)
            assert np.hypot(found[0]["x0"] - ring_centre[0],
                            found[0]["y0"] - ring_centre[1]) < 20, (shot, found)
        elif significance[shot] < 3:
            assert found == [], (shot, found)
