"""Strict input: a file whose frames a task does not read (too small, a wrong aspect, a stack
where one image is expected) is refused with its name, its shape and what was expected; the
other files are still read."""

import numpy as np

from retroscope.core.registry import get_task
from retroscope.core.task import InputSpec


def test_small_and_stacked_arrays_are_refused_by_name(tmp_path):
    task = get_task("diffraction")
    np.save(tmp_path / "tiny.npy", np.ones((7, 3), np.float32))
    np.save(tmp_path / "tiny_stack.npy", np.ones((7, 3, 2), np.float32))
    np.save(tmp_path / "strip.npy", np.ones((64, 200), np.float32))
    np.save(tmp_path / "good.npy", np.random.default_rng(0).random((128, 128)) + 0.1)
    files = [tmp_path / n for n in ("tiny.npy", "tiny_stack.npy", "strip.npy", "good.npy")]
    items, failures = task.read_experimental(files, {"scale": "linear"})
    assert [label for label, *_ in items] == ["good.npy"]
    refused = {label.split("/")[-1]: reason for label, reason in failures}
    assert set(refused) == {"tiny.npy", "tiny_stack.npy", "strip.npy"}
    assert "7 x 3 px" in refused["tiny.npy"] and "at least 32 px" in refused["tiny.npy"]
    assert "3 x 2 px" in refused["tiny_stack.npy"]
    assert "height/width 0.32" in refused["strip.npy"]


def test_a_stack_is_refused_where_one_image_per_file_is_read():
    spec = InputSpec(stacks=False)
    assert spec.problem([(32, 32)]) is None
    assert "stack of 3 frames" in spec.problem([(32, 32)] * 3)


def test_an_8_bit_image_without_a_stated_scale_is_refused_with_the_setting(tmp_path):
    """A display-like 8-bit image is refused unless the settings or the file say its scale;
    a 16-bit or float file keeps the default (linear counts)."""
    from PIL import Image

    task = get_task("diffraction")
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((64, 64)) * 255).astype(np.uint8)).save(tmp_path / "d8.png")
    Image.fromarray((rng.random((64, 64)) * 6e4).astype(np.uint16)).save(tmp_path / "d16.png")
    files = [tmp_path / "d8.png", tmp_path / "d16.png"]
    items, failures = task.read_experimental(files, None)
    assert [label for label, *_ in items] == ["d16.png"]
    assert len(failures) == 1 and failures[0][0].endswith("d8.png")
    assert "8-bit" in failures[0][1] and "scale = linear | log10 | unit" in failures[0][1]
    items, failures = task.read_experimental(files, {"scale": "linear"})
    assert len(items) == 2 and not failures


def test_recorded_settings_are_honoured_and_checked(tmp_path):
    """A file retroscope wrote says how it is scaled: read without settings it gives the
    same input as with them; the user's settings win; a wrong record is refused by name."""
    from retroscope.io.readers import write_cxi, write_png

    task = get_task("diffraction")
    image01 = np.random.default_rng(1).random((128, 128))
    write_png(tmp_path / "unit.png", image01, {"scale": "unit"})
    write_png(tmp_path / "plain.png", image01)
    write_png(tmp_path / "bad.png", image01, {"scale": "decibel"})
    write_cxi(tmp_path / "unit.cxi", image01[None].astype(np.float32), settings={"scale": "unit"})
    items, failures = task.read_experimental(
        [tmp_path / n for n in ("unit.png", "plain.png", "bad.png", "unit.cxi")], None)
    got = {label: x for label, _, x, _ in items}
    stated, _ = task.read_experimental([tmp_path / "plain.png"], {"scale": "unit"})
    np.testing.assert_allclose(got["unit.png"], stated[0][2], atol=1e-6)
    np.testing.assert_allclose(got["unit.cxi[0]"], stated[0][2], atol=1e-4)
    assert not np.allclose(got["plain.png"], stated[0][2], atol=0.1)  # read as linear counts
    assert [label.split("/")[-1] for label, _ in failures] == ["bad.png"]
    assert "recorded settings" in failures[0][1] and "decibel" in failures[0][1]
    user, _ = task.read_experimental([tmp_path / "unit.png"], {"scale": "linear"})
    np.testing.assert_allclose(user[0][2], got["plain.png"])
