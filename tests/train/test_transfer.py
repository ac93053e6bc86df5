"""Transfer learning (``--init-from RUN --freeze K``, Shvetsov-Shilovski & Lein 2023,
Sec. IV): a run starts from another run's weights and input normalisation; its first K
blocks, batch-norm statistics included, come out bit-identical; the rest is trained; the
intervals are calibrated on the new data."""

import pytest
import torch

from retroscope.compute.campaign import generate
from retroscope.runs import RunError, open_run
from retroscope.train.config import TrainConfig
from retroscope.train.fit import train


def _cfg(data, **kw):
    return TrainConfig(task="blob-test", data=str(data), model="resnet18",
                       model_kwargs={"base_width": 8, "stem": "small"}, epochs=2,
                       batch_size=32, **kw)


@pytest.fixture(scope="module")
def base(tmp_path_factory, blob_task):
    root = tmp_path_factory.mktemp("transfer")
    generate(blob_task, root / "data", 160, shard_size=80, seed=1, progress=False)
    generate(blob_task, root / "other", 160, shard_size=80, seed=2, progress=False)
    train(blob_task, _cfg(root / "data"), root / "base", progress=False)
    return root


def test_frozen_blocks_and_normalisation_come_out_unchanged(base, blob_task):
    train(blob_task, _cfg(base / "other", init_from=str(base / "base"), freeze=2),
          base / "tuned", progress=False)
    before, after = open_run(base / "base").state_dict(), open_run(base / "tuned").state_dict()
    frozen = ("body.conv1.", "body.bn1.", "body.layer1.")  # blocks 0 (stem) and 1
    for name, tensor in before.items():
        if name.startswith(frozen) or name.startswith("norm."):
            assert torch.equal(tensor, after[name]), name  # weights and BN statistics
    trained = [n for n in before if n.startswith("body.layer4.") and "weight" in n]
    assert trained and any(not torch.equal(before[n], after[n]) for n in trained)
    assert (base / "tuned" / "calibration.json").exists()


def test_freeze_needs_init_from_and_a_matching_network(base, blob_task, tmp_path):
    with pytest.raises(RunError, match="--init-from"):
        train(blob_task, _cfg(base / "other", freeze=1), tmp_path / "a", progress=False)
    wider = _cfg(base / "other", init_from=str(base / "base"))
    wider.model_kwargs = {"base_width": 16, "stem": "small"}
    with pytest.raises(ValueError, match="does not match"):
        train(blob_task, wider, tmp_path / "b", progress=False)
    with pytest.raises(ValueError, match="cannot freeze 9 blocks"):
        train(blob_task, _cfg(base / "other", init_from=str(base / "base"), freeze=9),
              tmp_path / "c", progress=False)
