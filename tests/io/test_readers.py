"""Experimental file readers: round trips of every format and a ReadError for every bad file."""

import hashlib
import pickle

import h5py
import numpy as np
import pytest
import tifffile
from PIL import Image

from retroscope.io.readers import (
    CXI_DATA,
    CXI_VERSION,
    ReadError,
    read_images,
    write_cxi,
    write_png,
)

H, W = 37, 31


@pytest.fixture
def image():
    return np.random.default_rng(0).random((H, W))


def only(frames):
    assert len(frames) == 1
    return frames[0]


# --- round trips ------------------------------------------------------------------------------


def test_png_16bit_round_trip(tmp_path, image):
    path = write_png(tmp_path / "a.png", image)
    label, frame = only(read_images(path))
    assert label == "a.png" and frame.shape == (H, W) and frame.dtype == np.float32
    assert np.abs(frame / 65535 - image).max() <= 0.5 / 65535 + 1e-7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]  # no temporary left


def test_png_8bit_and_rgb(tmp_path, image):
    gray = (image * 255).astype(np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.png")
    assert np.array_equal(only(read_images(tmp_path / "g.png"))[1], gray)
    rgb = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    expected = rgb @ np.array([0.299, 0.587, 0.114])
    assert np.allclose(only(read_images(tmp_path / "c.png"))[1], expected)


def test_animated_png_gives_one_frame_per_image(tmp_path):
    frames = [Image.fromarray(np.full((4, 5), 50 * i, np.uint8)) for i in range(3)]
    frames[0].save(tmp_path / "s.png", save_all=True, append_images=frames[1:])
    out = read_images(tmp_path / "s.png")
    assert [lab for lab, _ in out] == ["s.png[0]", "s.png[1]", "s.png[2]"]
    assert [f.max() for _, f in out] == [0, 50, 100]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32])
def test_tiff_round_trip(tmp_path, image, dtype):
    data = (image * 200).astype(dtype)
    tifffile.imwrite(tmp_path / "a.tif", data)
    label, frame = only(read_images(tmp_path / "a.tif"))
    assert label == "a.tif" and np.array_equal(frame, data.astype(frame.dtype))
    assert frame.dtype == np.result_type(dtype, np.float32)


def test_multipage_and_rgb_tiff(tmp_path, image):
    stack = np.stack([image, 2 * image, 3 * image]).astype(np.float32)
    tifffile.imwrite(tmp_path / "s.tiff", stack, photometric="minisblack")
    out = read_images(tmp_path / "s.tiff")
    assert [lab for lab, _ in out] == ["s.tiff[0]", "s.tiff[1]", "s.tiff[2]"]
    assert all(np.array_equal(f, s) for (_, f), s in zip(out, stack))
    rgb = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "c.tif", rgb, photometric="rgb")
    assert np.allclose(only(read_images(tmp_path / "c.tif"))[1], rgb @ [0.299, 0.587, 0.114])


def test_npy_2d_and_stack(tmp_path, image):
    np.save(tmp_path / "a.npy", image)
    label, frame = only(read_images(tmp_path / "a.npy"))
    assert label == "a.npy" and frame.dtype == np.float64 and np.array_equal(frame, image)
    np.save(tmp_path / "s.npy", np.stack([image, image]).astype(np.uint16))
    out = read_images(str(tmp_path / "s.npy"))
    assert [lab for lab, _ in out] == ["s.npy[0]", "s.npy[1]"]


def test_cxi_round_trip(tmp_path, image):
    stack = np.stack([image, 1 - image]).astype(np.float32)
    q = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    path = write_cxi(tmp_path / "run.cxi", stack,
                     extra={"/particles/particle_00/extrinsic_quaternion": q})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.cxi"]
    out = read_images(path)
    assert [lab for lab, _ in out] == ["run.cxi[0]", "run.cxi[1]"]
    assert all(np.array_equal(f, s) for (_, f), s in zip(out, stack))
    with h5py.File(path, "r") as f:
        assert f["cxi_version"][()] == CXI_VERSION
        assert f["/entry_1/instrument_1/detector_1/data"] == f[CXI_DATA]  # a hard link
        assert np.array_equal(f["/particles/particle_00/extrinsic_quaternion"], q)


def test_hdf5_explicit_dataset_and_detector_fallback(tmp_path, image):
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["/scan/frames"] = image[None]
        f["/entry_2/instrument_1/detector_1/data"] = 2 * image
        f["/entry_10/instrument_1/detector_1/data"] = 3 * image
    lab, frame = only(read_images(f"{tmp_path / 'a.h5'}::/scan/frames"))
    assert lab == "a.h5[0]" and np.array_equal(frame, image)
    assert np.array_equal(only(read_images(tmp_path / "a.h5", dataset="/scan/frames"))[1], image)
    assert np.array_equal(only(read_images(tmp_path / "a.h5"))[1], 2 * image)  # lowest entry
    with pytest.raises(ReadError, match="two datasets"):
        read_images(f"{tmp_path / 'a.h5'}::/scan/frames", dataset="/other")


def test_reading_never_changes_the_file(tmp_path, image):
    paths = [write_png(tmp_path / "a.png", image), write_cxi(tmp_path / "a.cxi", image[None])]
    before = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    for p in paths:
        read_images(p)
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths] == before


# --- errors -----------------------------------------------------------------------------------


def _bad_files(tmp_path):
    """(file name, how to write it, what the error must say)."""
    good = tmp_path / "good.png"
    write_png(good, np.random.default_rng(0).random((16, 16)))
    nan = np.ones((4, 5))
    nan[1, 2] = np.nan
    return [
        ("missing.png", lambda p: None, "no such file"),
        ("trunc.png", lambda p: p.write_bytes(good.read_bytes()[:300]), "corrupt PNG"),
        ("text.h5", lambda p: p.write_text("not HDF5"), "not a readable HDF5"),
        ("nocxi.cxi", lambda p: h5py.File(p, "w").close(), "entry_1/data_1/data"),
        ("image.jpg", lambda p: p.write_bytes(b"\xff\xd8"), "unknown extension '.jpg'"),
        ("fake.png", lambda p: Image.new("L", (4, 4)).save(p, format="TIFF"), "not a PNG"),
        ("junk.tif", lambda p: p.write_bytes(b"II*\x00junk"), "corrupt TIFF"),
        ("junk.npy", lambda p: p.write_bytes(b"\x93NUMPY\x01"), "corrupt NPY"),
        ("line.npy", lambda p: np.save(p, np.arange(5.0)), "2D image or a 3D stack"),
        ("cube.npy", lambda p: np.save(p, np.zeros((2, 2, 2, 2))), "got shape (2, 2, 2, 2)"),
        ("empty.npy", lambda p: np.save(p, np.array([])), "empty array"),
        ("nostack.npy", lambda p: np.save(p, np.zeros((0, 4, 4))), "empty stack"),
        ("zero.npy", lambda p: np.save(p, np.zeros((2, 0, 4))), "frame 0: zero-size frame"),
        ("allnan.npy", lambda p: np.save(p, np.full((4, 5), np.nan)), "NaN-filled: every"),
        ("somenan.npy", lambda p: np.save(p, nan), "NaN-filled: 1 NaN"),
        ("inf.npy", lambda p: np.save(p, np.array([[1.0, np.inf]])), "1 infinite"),
        ("complex.npy", lambda p: np.save(p, np.ones((2, 2), complex)), "real numbers"),
        ("nan.cxi", lambda p: write_cxi(p, np.stack([np.ones((2, 2)), nan[:2, 1:3]])),
         "nan.cxi::/entry_1/data_1/data: frame 1: NaN-filled"),
    ]


def test_every_bad_file_raises_read_error_naming_it(tmp_path):
    for name, write, says in _bad_files(tmp_path):
        path = tmp_path / name
        write(path)
        with pytest.raises(ReadError) as info:
            read_images(path)
            pytest.fail(f"{name}: no ReadError")
        message = str(info.value)
        assert name in message and says in message, message
        assert info.value.path.endswith(name) or "::" in info.value.path


def test_hdf5_errors_name_the_dataset(tmp_path, image):
    path = write_cxi(tmp_path / "a.cxi", image[None])
    with pytest.raises(ReadError, match=r"a\.cxi::/nope: no such dataset"):
        read_images(f"{path}::/nope")
    with pytest.raises(ReadError, match=r"a\.cxi::/entry_1: a Group, not a dataset"):
        read_images(path, dataset="/entry_1")
    with pytest.raises(ReadError, match=r"a\.cxi::/cxi_version: .* got shape \(\)"):
        read_images(path, dataset="/cxi_version")
    with pytest.raises(ReadError, match="PNG file has none"):
        read_images(write_png(tmp_path / "a.png", image), dataset="/data")


def test_read_error_pickles():
    e = pickle.loads(pickle.dumps(ReadError("/data/x.png", "no such file")))
    assert isinstance(e, ReadError) and str(e) == "/data/x.png: no such file"


def test_writers_refuse_bad_input_and_leave_nothing(tmp_path, image):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        write_png(tmp_path / "a.png", image + 0.5)
    with pytest.raises(ValueError, match="2D"):
        write_png(tmp_path / "a.png", image[None])
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        write_cxi(tmp_path / "a.cxi", image)
    with pytest.raises(ValueError, match="already written"):
        write_cxi(tmp_path / "a.cxi", image[None], extra={"entry_1/data_1/data": image})
    assert list(tmp_path.iterdir()) == []


# --- recorded settings ------------------------------------------------------------------------


def test_every_writer_records_its_settings_and_the_reader_returns_them(tmp_path, image):
    from retroscope.io.readers import read_file, write_tiff

    settings = {"scale": "unit", "pixel_um": 4.0}
    png = read_file(write_png(tmp_path / "a.png", image, settings))
    tiff = read_file(write_tiff(tmp_path / "a.tiff", (image * 100).astype(np.uint8), settings))
    stack = read_file(write_tiff(tmp_path / "s.tiff", np.stack([image, image]).astype(np.float32),
                                 settings))
    cxi = read_file(write_cxi(tmp_path / "a.cxi", image[None], settings=settings))
    assert png.settings == tiff.settings == stack.settings == cxi.settings == settings
    assert (png.bits, tiff.bits, stack.bits, cxi.bits) == (16, 8, None, None)
    assert len(stack.frames) == 2
    np.testing.assert_allclose(stack.frames[1][1], image.astype(np.float32))
    # files from elsewhere record nothing (a foreign TIFF description is not ours)
    tifffile.imwrite(tmp_path / "f.tiff", image.astype(np.float32), description="ImageJ=1.5")
    assert read_file(tmp_path / "f.tiff").settings == {}
    assert read_file(write_png(tmp_path / "b.png", image)).settings == {}


def test_a_corrupt_record_is_a_read_error(tmp_path, image):
    from PIL.PngImagePlugin import PngInfo

    from retroscope.io.readers import read_file

    info = PngInfo()
    info.add_text("retroscope", "{not json")
    Image.fromarray((image * 255).astype(np.uint8)).save(tmp_path / "c.png", pnginfo=info)
    with pytest.raises(ReadError, match="c.png.*not JSON"):
        read_file(tmp_path / "c.png")
