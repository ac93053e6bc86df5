"""Camera frames as labs keep them: any frame size (an roi, or an automatic crop around the
strongest absorption, reported with every answer so positions map back to the camera's
pixels), 8-bit grey-palette BMPs, 12-bit data in 16-bit files and FITS shots with several
frames."""

import numpy as np
import pytest
from PIL import Image

from retroscope.tasks.clouds.lab import camera_counts, check_settings, shot_inputs, to_frame

SHAPE = (64, 64)
ROWS, COLS = 964, 1292  # a Na-MOT camera's frames (8-bit BMP)
CLOUD_ROW, CLOUD_COL = 400.0, 900.0  # camera pixels
DARK, PROBE = 10.0, 200.0


def _frames(rows=ROWS, cols=COLS, od_peak=1.5, sigma=40.0) -> dict[str, np.ndarray]:
    y, x = np.mgrid[:rows, :cols] + 0.5
    od = od_peak * np.exp(-((x - CLOUD_COL) ** 2 + (y - CLOUD_ROW) ** 2) / (2 * sigma ** 2))
    rng = np.random.default_rng(0)
    probe = PROBE + rng.normal(0, 2, (rows, cols))
    return {"Image": DARK + (probe - DARK) * np.exp(-od),
            "Probe": PROBE + rng.normal(0, 2, (rows, cols)),
            "Background": DARK + rng.normal(0, 1, (rows, cols))}


def _palette_bmp(path, counts: np.ndarray) -> None:
    """An 8-bit BMP with a grey palette that Pillow reads as mode 'P' (an identity palette
    it would read as 'L'): here one whose top levels saturate at 250, as a camera
    program's display table may."""
    index = np.clip(np.round(counts), 0, 255).astype(np.uint8)
    im = Image.fromarray(index, mode="L").convert("P")
    im.putpalette([min(g, 250) for g in range(256) for _ in range(3)])
    im.save(path)
    with Image.open(path) as check:
        assert check.mode == "P"


def _strongest(items):
    (label, _, od, context), = items
    r, c = np.unravel_index(np.argmax(od), od.shape)
    return od, context, (r + 0.5, c + 0.5)


def test_a_grey_palette_bmp_triplet_of_any_size_is_cropped_around_the_cloud(tmp_path):
    for role, frame in _frames().items():
        _palette_bmp(tmp_path / f"{role}_0001.bmp", frame)
    items, failures = shot_inputs([tmp_path], {}, SHAPE)
    assert failures == []
    od, context, (r, c) = _strongest(items)
    assert od.shape == SHAPE
    factor = min(ROWS // SHAPE[0], COLS // SHAPE[1])  # 15: the largest square that fits
    r0, c0, h, w = context["crop"]
    assert context["bin"] == factor and (h, w) == (factor * SHAPE[0],) * 2
    assert 0 <= r0 <= ROWS - h and 0 <= c0 <= COLS - w
    # the binned maximum maps back to the cloud's camera pixels within one binned pixel
    obj = {"x0": c, "y0": r, "wx": 2.0, "wy": 2.0, "box": [c - 1, r - 1, c + 1, r + 1]}
    framed = to_frame(obj, context)
    assert framed["x0"] == pytest.approx(CLOUD_COL, abs=factor)
    assert framed["y0"] == pytest.approx(CLOUD_ROW, abs=factor)
    assert framed["wx"] == pytest.approx(2.0 * factor)
    assert framed["box"][0] == pytest.approx(framed["x0"] - factor)
    assert (framed["crop_row0"], framed["crop_col0"], framed["crop_rows"]) == (r0, c0, h)


def test_an_roi_is_read_as_given_and_a_bad_one_is_refused(tmp_path):
    for role, frame in _frames().items():
        _palette_bmp(tmp_path / f"{role}_0001.bmp", frame)
    roi = [200, 700, 448, 448]  # 7 x 64 px on each side, around the cloud
    items, _ = shot_inputs([tmp_path], {"roi": roi}, SHAPE)
    _, context, (r, c) = _strongest(items)
    assert context["crop"] == roi and context["bin"] == 7
    assert c * 7 + roi[1] == pytest.approx(CLOUD_COL, abs=7)
    _, failures = shot_inputs([tmp_path], {"roi": [0, 0, 100, 100]}, SHAPE)
    assert "does not bin" in failures[0][1]
    _, failures = shot_inputs([tmp_path], {"roi": [900, 0, 448, 448]}, SHAPE)
    assert "outside the 964x1292 frame" in failures[0][1]
    with pytest.raises(ValueError, match="roi must be"):
        check_settings({"roi": [0, 0, -4, 4]})


def test_a_frame_smaller_than_the_input_is_refused(tmp_path):
    for role, frame in _frames(rows=48, cols=300).items():
        _palette_bmp(tmp_path / f"{role}_0001.bmp", frame)
    _, failures = shot_inputs([tmp_path], {}, SHAPE)
    assert "smaller than the network's 64x64" in failures[0][1]


def test_a_colour_bmp_is_refused_by_name(tmp_path):
    from retroscope.tasks.clouds.shots import FrameError, read_frame

    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(tmp_path / "colour.bmp")
    with pytest.raises(FrameError, match="colour.bmp.*colour"):
        read_frame(tmp_path / "colour.bmp")


def test_twelve_bit_frames_in_sixteen_bit_words():
    frames = {"atoms": np.array([[16.0, 4095 * 16.0]]), "probe": np.array([[32.0, 64.0]])}
    shifted = camera_counts(frames, 12, "shot")
    np.testing.assert_array_equal(shifted["atoms"], [[1.0, 4095.0]])
    assert camera_counts({"atoms": np.array([[4095.0]])}, 12, "shot")["atoms"][0, 0] == 4095
    with pytest.raises(ValueError, match="exceed a 12-bit camera"):
        camera_counts({"atoms": np.array([[4097.0]])}, 12, "shot")
    assert check_settings({"camera_bits": 12})["saturation_counts"] == 4095


def test_a_fits_shot_with_three_frames_is_read_and_cropped(tmp_path):
    fits = pytest.importorskip("astropy.io.fits")
    frames = _frames()
    cube = np.stack([frames["Image"], frames["Probe"], frames["Background"]]).astype(np.float32)
    fits.PrimaryHDU(cube).writeto(tmp_path / "shot_0001.fits")
    items, failures = shot_inputs([tmp_path / "shot_0001.fits"], {}, SHAPE)
    assert failures == []
    _, context, (r, c) = _strongest(items)
    assert c * context["bin"] + context["crop"][1] == pytest.approx(CLOUD_COL, abs=15)
    # the roles in another order, as separate image HDUs
    hdus = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(cube[2]), fits.ImageHDU(cube[1]),
                         fits.ImageHDU(cube[0])])
    hdus.writeto(tmp_path / "other.fits")
    roles = {"atoms": 2, "probe": 1, "dark": 0}
    again, failures = shot_inputs([tmp_path / "other.fits"], {"fits_frames": roles}, SHAPE)
    assert failures == []
    np.testing.assert_allclose(again[0][2], items[0][2], atol=1e-5)
    _, failures = shot_inputs([tmp_path / "other.fits"], {"fits_frames": {"atoms": 7}}, SHAPE)
    assert "has 3 frames" in failures[0][1]
