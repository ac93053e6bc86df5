"""Readers of real shots: grouping files into triplets, image and HDF5 frames, errors."""

import h5py
import numpy as np
import pytest
import tifffile
from PIL import Image

from retroscope.tasks.clouds.shots import (
    FrameError,
    IncompleteShotError,
    MissingDatasetError,
    Shot,
    find_triplets,
    load_shot,
    read_frame,
    read_h5_shot,
)

FRAME = np.arange(12 * 10, dtype=np.uint16).reshape(12, 10) * 7


def write_tiff(path, frame=FRAME):
    tifffile.imwrite(path, frame)
    return path


def test_find_triplets_default_pattern(tmp_path):
    for shot_id in ("run_2", "run_10"):
        write_tiff(tmp_path / f"Image_{shot_id}.tiff")
        write_tiff(tmp_path / f"probe_{shot_id}.TIF")
        write_tiff(tmp_path / f"BACKGROUND_{shot_id}.tif")
    write_tiff(tmp_path / "Image_run_3.tiff")  # no probe
    write_tiff(tmp_path / "Probe_run_4.tiff")  # no atoms
    (tmp_path / "LICENSE").write_text("MIT")
    (tmp_path / "Image_run_5.txt").write_text("not an image")
    shots, problems = find_triplets(tmp_path)
    assert [s.id for s in shots] == ["run_2", "run_10"]  # natural order
    assert shots[0] == Shot("run_2", tmp_path / "Image_run_2.tiff", tmp_path / "probe_run_2.TIF",
                            tmp_path / "BACKGROUND_run_2.tif")
    assert len(problems) == 2
    assert "'run_3'" in problems[0] and "missing probe" in problems[0]
    assert "'run_4'" in problems[1] and "missing atoms" in problems[1]
    with pytest.raises(IncompleteShotError, match="run_3.*\n.*run_4"):
        find_triplets(tmp_path, strict=True)
    # requiring the dark frame too; atoms-only shots when only atoms are required
    assert len(find_triplets(tmp_path, require=("atoms", "probe", "dark")).problems) == 2
    assert [s.id for s in find_triplets(tmp_path, require=()).shots] == ["run_2", "run_3",
                                                                         "run_10"]


def test_find_triplets_custom_pattern_and_errors(tmp_path):
    for role in ("atoms", "ref", "dark"):
        Image.fromarray(FRAME).save(tmp_path / f"shot0007-{role}.png")
    shots, problems = find_triplets(tmp_path, r"shot(?P<id>\d+)-(?P<role>atoms|ref|dark)\.png",
                                    roles={"atoms": "atoms", "ref": "probe", "dark": "dark"})
    assert problems == [] and shots[0].id == "0007" and shots[0].probe.name == "shot0007-ref.png"
    with pytest.raises(ValueError, match="named groups 'role' and 'id'"):
        find_triplets(tmp_path, r"shot(\d+)\.png")
    with pytest.raises(ValueError, match="may only name"):
        find_triplets(tmp_path, roles={"image": "signal"})
    with pytest.raises(ValueError, match=r"shot0007-atoms\.png: role 'atoms' is not in roles"):
        find_triplets(tmp_path, r"shot(?P<id>\d+)-(?P<role>\w+)\.png")
    Image.fromarray(FRAME).save(tmp_path / "Image_1.png")
    write_tiff(tmp_path / "Image_1.tiff")
    with pytest.raises(ValueError, match="two atoms frames for shot '1'"):
        find_triplets(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        find_triplets(tmp_path / "absent")


def test_read_frame_formats(tmp_path):
    np.testing.assert_array_equal(read_frame(write_tiff(tmp_path / "a.tiff")), FRAME)
    Image.fromarray(FRAME).save(tmp_path / "b.png")  # 16-bit grey
    png = read_frame(tmp_path / "b.png")
    assert png.dtype == np.float64
    np.testing.assert_array_equal(png, FRAME)
    Image.fromarray((FRAME % 256).astype(np.uint8)).save(tmp_path / "c.bmp")
    np.testing.assert_array_equal(read_frame(tmp_path / "c.bmp"), FRAME % 256)


def test_read_frame_errors_name_the_file(tmp_path):
    colour = np.zeros((4, 5, 3), np.uint8)
    colour[..., 1] = 90  # green: not a grey image (an RGB one with R = G = B is read)
    Image.fromarray(colour).save(tmp_path / "rgb.png")
    with pytest.raises(FrameError, match=r"rgb\.png: expected a single-channel \(grey\)"):
        read_frame(tmp_path / "rgb.png")
    write_tiff(tmp_path / "stack.tiff", np.zeros((2, 4, 5), np.uint16))
    with pytest.raises(FrameError, match=r"stack\.tiff: expected a 2D"):
        read_frame(tmp_path / "stack.tiff")
    nan = np.ones((4, 5), np.float32)
    nan[2, 3] = np.nan
    write_tiff(tmp_path / "nan.tiff", nan)
    with pytest.raises(FrameError, match=r"nan\.tiff: 1 NaN"):
        read_frame(tmp_path / "nan.tiff")
    (tmp_path / "broken.tiff").write_bytes(b"not a tiff at all")
    with pytest.raises(FrameError, match=r"broken\.tiff: cannot read image"):
        read_frame(tmp_path / "broken.tiff")
    with pytest.raises(FrameError, match="unsupported extension"):
        read_frame(tmp_path / "frame.jpg")
    with pytest.raises(FileNotFoundError, match=r"missing\.tif"):
        read_frame(tmp_path / "missing.tif")


def test_read_h5_shot(tmp_path):
    path = tmp_path / "shot.h5"
    with h5py.File(path, "w") as f:
        f["/images/atoms"] = FRAME
        f["/images/probe"] = FRAME + 1
        f["/images/dark"] = np.zeros_like(FRAME)
        f["/cam2/signal"] = FRAME
        f["/odd/one"] = np.zeros((3, 3))
    frames = read_h5_shot(path)
    assert set(frames) == {"atoms", "probe", "dark"}
    np.testing.assert_array_equal(frames["probe"], FRAME + 1.0)
    assert frames["atoms"].dtype == np.float64
    assert set(read_h5_shot(path, {"atoms": "cam2/signal"})) == {"atoms"}
    with pytest.raises(MissingDatasetError, match=r"shot\.h5: no dataset at '/images/nope'"):
        read_h5_shot(path, {"atoms": "/images/atoms", "probe": "/images/nope"})
    with pytest.raises(KeyError):
        read_h5_shot(path, {"atoms": "/images/nope"})
    with pytest.raises(MissingDatasetError, match="a group, not a dataset"):
        read_h5_shot(path, {"atoms": "/images"})
    with pytest.raises(FrameError, match="differ in shape"):
        read_h5_shot(path, {"atoms": "/images/atoms", "dark": "/odd/one"})
    (tmp_path / "bad.h5").write_bytes(b"no hdf5")
    with pytest.raises(FrameError, match=r"bad\.h5: cannot open as HDF5"):
        read_h5_shot(tmp_path / "bad.h5")


def test_load_shot(tmp_path):
    shot = Shot("1", write_tiff(tmp_path / "Image_1.tiff"), write_tiff(tmp_path / "Probe_1.tiff"))
    frames = load_shot(shot)
    assert set(frames) == {"atoms", "probe"}
    bad = Shot("2", shot.atoms, write_tiff(tmp_path / "Probe_2.tiff", FRAME[:5]))
    with pytest.raises(FrameError, match="shot '2'.*differ in shape"):
        load_shot(bad)
