"""Distributed data-parallel training on two CPU processes (gloo): the replicas end with
equal weights and only process 0 writes the run directory."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from retroscope.compute.campaign import generate

TINY = '{"base_width": 4, "stem": "small"}'


def _train(data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    command = Path(sys.executable).with_name("retroscope")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(command), "train", "blob-test", "--data", str(data), "--out",
                           str(out), "--model", "resnet18", "--model-kwargs", TINY,
                           "--epochs", "2", "--batch-size", "8", *extra],
                          capture_output=True, text=True, env=env, timeout=300)


def _files(run: Path) -> set[str]:
    return {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()}


def test_two_cpu_processes_train_identical_replicas_and_write_one_run(tmp_path, blob_task):
    if not Path(sys.executable).with_name("retroscope").exists():
        pytest.skip("the retroscope command is not installed beside this Python")
    generate(blob_task, tmp_path / "data", 96, shard_size=48, seed=0, progress=False)

    ddp = _train(tmp_path / "data", tmp_path / "ddp", "--devices", "2", "--strategy", "ddp")
    assert ddp.returncode == 0, ddp.stdout + ddp.stderr
    summary = json.loads((tmp_path / "ddp" / "train_summary.json").read_text())
    assert summary["world_size"] == 2
    assert summary["replica_weight_difference"] == 0.0      # gradients were averaged
    config = json.loads((tmp_path / "ddp" / "config.json").read_text())
    assert (config["devices"], config["strategy"]) == (2, "ddp")

    single = _train(tmp_path / "data", tmp_path / "single")
    assert single.returncode == 0, single.stdout + single.stderr
    # process 1 wrote nothing of its own: the same files as a one-process run
    assert _files(tmp_path / "ddp") == _files(tmp_path / "single")
    # and the printed summary came once
    assert ddp.stdout.count('"train_seconds"') == 1
