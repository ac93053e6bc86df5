"""The automatic crop to the crystal: box, zoom, geometry, noise and bad input."""

import numpy as np
import pytest
import torch

from retroscope.core.registry import get_task
from retroscope.tasks.crystal.camera import EMCCD
from retroscope.tasks.crystal.crop import CropBox, crop_to_crystal, crystal_box
from retroscope.tasks.crystal.render import ImagingConfig, render_points
from retroscope.tasks.crystal.task import brightness_normalise

CFG = ImagingConfig(shape=(160, 112), pixel_um=4.0)


def _frame(points_rc_px):
    """A clean frame with one ion spot at each (row, col) pixel position, in focus."""
    rc = np.asarray(points_rc_px, dtype=np.float64)
    rows, cols = CFG.shape
    pts = np.zeros((len(rc), 3))
    pts[:, 2] = (rc[:, 0] - (rows - 1) / 2) * CFG.pixel_um
    pts[:, 0] = (rc[:, 1] - (cols - 1) / 2) * CFG.pixel_um
    image = render_points(pts, np.ones(len(rc)), CFG)
    return (image / image.max()).astype(np.float32)


def _spots(image, n):
    """Centroids of the n brightest local maxima (row, col)."""
    from scipy.ndimage import maximum_filter

    peaks = (image == maximum_filter(image, size=5)) & (image > 0.3 * image.max())
    r, c = np.nonzero(peaks)
    order = np.argsort(image[r, c])[::-1][:n]
    return np.stack([r[order], c[order]], axis=1).astype(float)


# a small "crystal": a 3 x 5 lattice of ions, 4 px apart, off the frame centre
LATTICE = [(60 + 4 * i, 40 + 4 * j) for i in range(5) for j in range(3)]


def test_box_spans_the_ions_with_a_margin():
    box = crystal_box(_frame(LATTICE))
    assert box.centre == pytest.approx((68.0, 44.0), abs=0.3)
    # ions span 16 x 8 px between centres; each spot adds ~1 sigma each side, the margin more
    assert 16 + 2 * 3 <= box.size[0] <= 16 * 1.16 + 2 * 3 + 6
    assert 8 + 2 * 3 <= box.size[1] <= 8 * 1.16 + 2 * 3 + 6


def test_crop_zooms_isotropically_onto_the_output():
    frame = _frame(LATTICE)
    out, zoom = crop_to_crystal(frame, (64, 48))
    box = crystal_box(frame)
    assert zoom == pytest.approx(min(64 / box.size[0], 48 / box.size[1]))
    assert zoom > 1.5
    before = _spots(frame, 15)
    after = _spots(out, 15)
    # the lattice spacing grows by the zoom along both axes (the aspect ratio is kept)
    d_rows = np.ptp(after[:, 0]) / np.ptp(before[:, 0])
    d_cols = np.ptp(after[:, 1]) / np.ptp(before[:, 1])
    assert d_rows == pytest.approx(zoom, rel=0.1)
    assert d_cols == pytest.approx(zoom, rel=0.1)
    # and the crystal sits in the middle of the output
    assert after.mean(axis=0) == pytest.approx(((64 - 1) / 2, (48 - 1) / 2), abs=1.0)


def test_zoom_is_capped_and_large_crystals_are_shrunk():
    one_ion = _frame([(80, 55)])
    _, zoom = crop_to_crystal(one_ion, (128, 88), max_zoom=4.0)
    assert zoom == 4.0
    wide = _frame([(r, c) for r in range(20, 141, 6) for c in range(15, 98, 6)])
    out, zoom = crop_to_crystal(wide, (64, 44))
    assert zoom < 0.5 and np.isfinite(out).all()


def test_box_is_robust_to_camera_noise_and_hot_pixels():
    frame = _frame(LATTICE)
    clean = crystal_box(frame)
    noisy = frame.copy()
    noisy[5, 5] = noisy[150, 100] = 0.5  # hot pixels far from the crystal
    x = torch.from_numpy(noisy)[None]
    camera = EMCCD()
    g = torch.Generator().manual_seed(1)
    params = camera.draw(x, g)
    params.update(peak_photons=30.0, background_photons=1.0)
    noisy = brightness_normalise(camera.apply(x, **params)[0].numpy())
    box = crystal_box(noisy)
    assert box.centre == pytest.approx(clean.centre, abs=1.0)
    assert box.size == pytest.approx(clean.size, rel=0.15)


def test_crop_commutes_with_mirroring():
    frame = _frame(LATTICE + [(75, 47)])
    out, _ = crop_to_crystal(frame, (64, 48))
    flipped, _ = crop_to_crystal(frame[::-1, ::-1].copy(), (64, 48))
    np.testing.assert_allclose(flipped[::-1, ::-1], out, atol=0.02)


def test_empty_frame_and_bad_input():
    out, zoom = crop_to_crystal(np.zeros((160, 112)), (128, 88))
    assert out.shape == (128, 88) and zoom == pytest.approx(min(128 / 160, 88 / 112)) and not out.any()
    assert crystal_box(np.zeros((10, 10))) is None
    with pytest.raises(ValueError, match="NaN"):
        crystal_box(np.full((10, 10), np.nan))
    with pytest.raises(ValueError, match="2D"):
        crystal_box(np.zeros((2, 10, 10)))
    with pytest.raises(ValueError, match="out_shape"):
        crop_to_crystal(np.zeros((10, 10)), (0, 5))
    out, _ = crop_to_crystal(np.ones((10, 10)), (4, 4), box=CropBox((4.5, 4.5), (4.0, 4.0)))
    np.testing.assert_allclose(out, 1.0)


def test_task_view_is_the_crop_and_can_be_switched_off():
    task = get_task("crystal")
    assert task.input_shape == (128, 88)
    frame = _frame(LATTICE)
    x = task.model_input(frame)
    assert x.shape == (1, 128, 88) and x.dtype == np.float32
    assert float(x.max()) == pytest.approx(1.0)
    whole = task.with_config(input_scale=None)
    assert whole.input_shape == (160, 112)
    np.testing.assert_array_equal(whole.model_input(frame), whole.network_input(frame))
    # a reading setting: it survives with_config but does not enter the stored-data config
    assert task.with_config(n_ca=(30, 100)).input_scale == task.input_scale
    assert "input_scale" not in task.config()
    with pytest.raises(ValueError, match="input_scale"):
        task.with_config(input_scale=0.0)


def test_fixed_zoom_keeps_the_frame_scale_and_centres_the_crystal():
    frame = _frame(LATTICE)
    # odd sizes: the window's centre pixel falls on the box centre, no half-pixel resampling
    out, zoom = crop_to_crystal(frame, (63, 47), zoom=1.0)
    assert zoom == 1.0
    before, after = _spots(frame, 15), _spots(out, 15)
    np.testing.assert_allclose(np.ptp(after, axis=0), np.ptp(before, axis=0), atol=0.5)
    assert after.mean(axis=0) == pytest.approx((31.0, 23.0), abs=1.0)
    with pytest.raises(ValueError, match="zoom"):
        crop_to_crystal(frame, (64, 48), zoom=-1.0)
    task = get_task("crystal").with_config(zoom=False)
    assert task.view_config() == {"input_scale": 0.8, "zoom": False}
