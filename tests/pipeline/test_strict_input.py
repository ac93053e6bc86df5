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
