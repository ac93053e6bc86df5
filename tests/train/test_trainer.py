"""The shared training machinery: configurations made once from the task and its learner, and
fresh online imperfections every epoch whatever the learner."""

import pytest
from lightning.pytorch.callbacks import Callback

from retroscope.compute.campaign import generate
from retroscope.core.registry import get_task
from retroscope.train.config import train_config
from retroscope.train.fit import train


def test_train_config_layers_learner_task_and_user_settings(blob_task):
    """Field defaults < the learner's recipe < the task's < what the user asked (None: unset)."""
    cfg = train_config(blob_task, "data", epochs=3, lr=None, batch_size=16)
    assert (cfg.learner, cfg.lr, cfg.batch_size, cfg.epochs) == ("regression", 2e-3, 16, 3)
    assert cfg.model == blob_task.model.name and cfg.model_kwargs == blob_task.model.kwargs
    detector = get_task("clouds")
    cfg = train_config(detector, "data", momentum=0.8)
    assert (cfg.learner, cfg.batch_size, cfg.lr, cfg.momentum) == ("detection", 4, 5e-3, 0.8)
    cfg = train_config(blob_task, "data", model="resnet34", model_kwargs={"base_width": 4})
    assert cfg.model_kwargs == {"base_width": 4}  # another network: the task's settings go
    with pytest.raises(ValueError, match="unknown training settings"):
        train_config(blob_task, "data", learning_rate=1e-3)


class EpochsSeen(Callback):
    def __init__(self) -> None:
        self.epochs = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.epochs.append(trainer.train_dataloader.dataset.epoch)


def test_each_epoch_draws_new_imperfections(tmp_path, blob_task):
    """The training dataset is told each epoch, so its observer's draws change between epochs
    (an observer seeded per (seed, epoch, index))."""
    generate(blob_task, tmp_path / "data", 80, shard_size=40, seed=1, progress=False)
    seen = EpochsSeen()
    cfg = train_config(blob_task, tmp_path / "data", epochs=2, batch_size=32)
    train(blob_task, cfg, tmp_path / "run", progress=False, callbacks=[seen])
    assert sorted(set(seen.epochs)) == [0, 1]
