"""The training machinery every learner shares: datasets, loaders, the Lightning trainer.

A learner's ``fit`` builds its LightningModule and calls these: :func:`prepare_data` (the
training split with the task's online imperfections, the validation split clean, loaders),
:func:`make_trainer` (checkpoints of the best and the last epoch, early stopping where asked,
the time limit, CSV or MLflow logging, CUDA when present) and :func:`fit_best` (train, resume
from ``last.ckpt`` where asked, restore the best epoch's weights).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from retroscope.core.observe import Identity, OnlineObserver, RandomChoice
from retroscope.data.dataset import ShardDataset
from retroscope.runs import RunError


def training_observer(task, probability: float, seed: int) -> OnlineObserver | None:
    """The task's online imperfections, applied to a fraction ``probability`` of samples."""
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"augment probability must lie in [0, 1], got {probability}")
    transform = task.observe(train=True) if probability > 0 else None
    if transform is None:
        return None
    if probability < 1.0:
        transform = RandomChoice([Identity(), transform], weights=[1.0 - probability, probability])
    return OnlineObserver(transform, seed=seed)


def split_datasets(task, cfg, learner) -> tuple[ShardDataset, ShardDataset]:
    """(training split with the online imperfections, clean validation split) of
    ``cfg.data``, with the learner's targets."""
    observer = training_observer(task, cfg.augment, cfg.seed)
    train_set = ShardDataset(cfg.data, task, "train", observer=observer,
                             in_memory=cfg.in_memory, limit=cfg.limit_train, learner=learner)
    val_set = ShardDataset(cfg.data, task, "val", in_memory=cfg.in_memory,
                           limit=cfg.limit_val, learner=learner)
    return train_set, val_set


def prepare_data(task, cfg, learner):
    """Seed everything with ``cfg.seed``, then (training split, validation split, their
    loaders) with the learner's targets and collate function."""
    import lightning as L

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    train_set, val_set = split_datasets(task, cfg, learner)
    collate = learner.collate()
    return (train_set, val_set,
            loader(train_set, cfg.batch_size, True, cfg.num_workers, cfg.seed, collate),
            loader(val_set, cfg.batch_size, False, cfg.num_workers, cfg.seed, collate))


def loader(dataset, batch_size: int, shuffle: bool, num_workers: int, seed: int,
           collate_fn=None):
    """A DataLoader with a seeded shuffle; the last incomplete training batch is dropped."""
    from torch.utils.data import DataLoader

    g = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=g,
                      num_workers=num_workers, drop_last=shuffle and len(dataset) > batch_size,
                      persistent_workers=False, collate_fn=collate_fn)


def input_statistics(dataset: ShardDataset, n: int = 512) -> tuple[float, float]:
    """(mean, standard deviation) of the network's clean inputs over ``n`` evenly spaced
    rows: the input normalisation stored with the weights."""
    idx = np.linspace(0, len(dataset) - 1, min(n, len(dataset))).astype(int)
    xs = np.stack([dataset.task.model_input(dataset.observable(int(i))) for i in idx])
    return float(xs.mean()), float(xs.std() + 1e-6)


def clean_rows(dataset: ShardDataset, n: int = 4000):
    """At most ``n`` evenly spaced rows of ``dataset`` without its online imperfections: the
    training inputs an out-of-distribution model is fitted on."""
    import copy

    from torch.utils.data import Subset

    clean = copy.copy(dataset)
    clean.observer = None
    return Subset(clean, np.linspace(0, len(dataset) - 1, min(len(dataset), n)).astype(int))


def make_logger(cfg, out: Path):
    """CSV logs under ``out/logs``, or MLflow (a SQLite file in the run unless a URI is
    given) with ``cfg.tracking = "mlflow"``."""
    if cfg.tracking == "mlflow":
        try:
            from lightning.pytorch.loggers import MLFlowLogger
        except ImportError as exc:  # pragma: no cover - depends on the optional extra
            raise RunError("--tracking mlflow needs the extra: "
                           "pip install 'retroscope[tracking]'") from exc
        uri = cfg.tracking_uri or f"sqlite:///{(Path(out) / 'mlflow.db').resolve()}"
        return MLFlowLogger(experiment_name=f"retroscope-{cfg.task}", tracking_uri=uri,
                            run_name=Path(out).name)
    from lightning.pytorch.loggers import CSVLogger

    return CSVLogger(save_dir=str(out), name="logs", version="")


def _epoch_callback():
    """A Lightning callback that tells the training dataset which epoch starts, so that the
    online imperfections are drawn afresh every epoch (``ShardDataset.set_epoch``)."""
    from lightning.pytorch.callbacks import Callback

    class DatasetEpoch(Callback):
        def on_train_epoch_start(self, trainer, module) -> None:
            trainer.train_dataloader.dataset.set_epoch(trainer.current_epoch)

    return DatasetEpoch()


def _quiet_lightning() -> None:
    """Keep Lightning's chatter out of a run's output: its hardware notices and tips (INFO
    lines; the run records its device itself) and a deprecation warning Lightning raises from
    its own use of a torch API (``lightning/pytorch/utilities/_pytree.py``), which nothing
    here can act on, and its notice of modules in eval mode, which frozen blocks are on
    purpose. Warnings of our own code still show."""
    import logging
    import warnings

    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 "lightning.pytorch.accelerators.cuda"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is "
                                              r"deprecated")
    # transfer learning keeps frozen blocks in eval mode on purpose (their batch-norm
    # statistics are what was transferred); Lightning warns about any such module
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")


def make_trainer(cfg, out: Path, monitor: str, mode: str, steps_per_epoch: int,
                 callbacks: list | None = None, progress: bool = True,
                 early_stopping: bool = False, **trainer_kwargs):
    """(Lightning Trainer, its best-epoch ModelCheckpoint) for a run directory ``out``:
    ``checkpoints/best.ckpt`` by ``monitor`` (``mode`` "min" or "max") and ``last.ckpt``;
    fresh online imperfections every epoch; early stopping on ``monitor`` after
    ``cfg.patience`` epochs where asked; ``cfg``'s epochs, time limit and precision; the
    training loss logged every 10 steps, or once an epoch for shorter epochs
    (``steps_per_epoch``); further Trainer settings in ``trainer_kwargs``."""
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from retroscope.train.distributed import replica_check, strategy, world_size

    _quiet_lightning()
    ckpt = ModelCheckpoint(dirpath=Path(out) / "checkpoints", filename="best", monitor=monitor,
                           mode=mode, save_last=True)
    extra = [ckpt, _epoch_callback(), *(callbacks or [])]
    if world_size(cfg) > 1:
        extra.append(replica_check())
    if early_stopping:
        extra.insert(1, EarlyStopping(monitor=monitor, patience=cfg.patience, mode=mode))
    if progress:
        from lightning.pytorch.callbacks import RichProgressBar

        extra.append(RichProgressBar())
    trainer = L.Trainer(max_epochs=cfg.epochs, accelerator="auto", devices=cfg.devices,
                        num_nodes=cfg.num_nodes, strategy=strategy(cfg), callbacks=extra,
                        logger=make_logger(cfg, out), enable_progress_bar=progress,
                        enable_model_summary=False,
                        max_time={"minutes": cfg.max_minutes} if cfg.max_minutes else None,
                        precision=cfg.precision,
                        log_every_n_steps=max(1, min(10, steps_per_epoch)), **trainer_kwargs)
    return trainer, ckpt


def fit_best(trainer, ckpt, module, train_loader, val_loader, out: Path,
             resume: bool) -> dict:
    """Train ``module`` (continuing from ``checkpoints/last.ckpt`` with ``resume``), then load
    the best epoch's weights into it. Returns the summary entries every learner reports:
    training seconds, epochs run, the best epoch and its monitored score, the device; with
    several processes their number and the largest weight difference between replicas. A
    process other than 0 returns only its ``global_rank`` (it writes nothing)."""
    last = Path(out) / "checkpoints" / "last.ckpt"
    t0 = time.perf_counter()
    trainer.fit(module, train_loader, val_loader, ckpt_path=str(last) if resume else None)
    seconds = time.perf_counter() - t0
    if not trainer.is_global_zero:
        return {"global_rank": trainer.global_rank}
    replicas = {}
    if trainer.world_size > 1:
        check = next(c for c in trainer.callbacks if hasattr(c, "max_difference"))
        replicas = {"world_size": trainer.world_size,
                    "replica_weight_difference": check.max_difference}
    best = ckpt.best_model_path or str(last)
    state = torch.load(best, map_location="cpu", weights_only=False)
    module.load_state_dict(state["state_dict"])
    score = ckpt.best_model_score
    return {"train_seconds": seconds, "epochs_run": trainer.current_epoch,
            "best_epoch": int(state.get("epoch", -1)),
            f"best_{ckpt.monitor}": None if score is None else float(score),
            "device": str(trainer.strategy.root_device), **replicas}
