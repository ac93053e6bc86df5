"""``retroscope train``: fit a task's network on a simulated dataset and write a run directory.

The run directory is everything needed to predict later on another machine::

    config.json          the resolved configuration (task, task settings, model, training)
    model.safetensors    weights, with metadata (task, model, input shape, targets, version)
    normalization.json   input statistics of the training split and the target encoding
    calibration.json     split-conformal interval scales and the OOD score threshold
    ood.safetensors      the Gaussian feature model behind the OOD score
    checkpoints/         Lightning checkpoints (last.ckpt resumes an interrupted run)
    logs/                CSV logs (MLflow when asked)

Training uses Lightning: AdamW with a one-cycle learning-rate schedule (planned over the
epochs, and over the time limit ``max_minutes`` when that comes first), checkpointing every
epoch, early stopping on the validation loss, CUDA when present and the CPU otherwise.
Detection tasks (``task.learner == "detection"``) train with their own recipe
(:mod:`retroscope.train.detection`: SGD with momentum, step schedule, best epoch by mAP) into
a run directory of the same shape.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from retroscope import __version__
from retroscope.core.task import Task
from retroscope.data.shards import Manifest, write_json_atomic


class RunError(RuntimeError):
    """A run directory is missing, incomplete, or would be overwritten."""


#: Lightning precisions a run may ask for (bfloat16 needs no loss scaling)
PRECISIONS = ("32-true", "bf16-mixed")


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored as config.json)."""

    task: str
    data: str
    model: str
    model_kwargs: dict = field(default_factory=dict)
    epochs: int = 20
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9  # SGD (detection recipe)
    step_size: int = 5  # epochs between learning-rate decays (detection recipe)
    decay: float = 0.1  # factor of each decay (detection recipe)
    patience: int = 8
    augment: float = 1.0  # probability that a training sample passes the task's imperfections
    seed: int = 0
    num_workers: int = 0
    in_memory: bool = True
    max_minutes: float | None = None
    coverage: float = 0.9
    symmetrise: bool = True  # average predictions over the task's input_flips
    precision: str = "32-true"  # Lightning precision; "bf16-mixed": autocast in bfloat16
    tracking: str = "csv"
    tracking_uri: str | None = None
    limit_train: int | None = None
    limit_val: int | None = None
    task_config: dict = field(default_factory=dict)
    view: dict = field(default_factory=dict)  # the task's reading settings (view_config)
    data_hash: str = ""
    code_version: str = __version__


def _loader(dataset, batch_size: int, shuffle: bool, num_workers: int, seed: int):
    return _loader_with(dataset, batch_size, shuffle, num_workers, seed, None)


def _loader_with(dataset, batch_size: int, shuffle: bool, num_workers: int, seed: int,
                 collate_fn):
    from torch.utils.data import DataLoader

    g = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=g,
                      num_workers=num_workers, drop_last=shuffle and len(dataset) > batch_size,
                      persistent_workers=False, collate_fn=collate_fn)


def _input_stats(dataset, n: int = 512) -> tuple[float, float]:
    idx = np.linspace(0, len(dataset) - 1, min(n, len(dataset))).astype(int)
    xs = np.stack([dataset.task.model_input(dataset.observable(int(i))) for i in idx])
    return float(xs.mean()), float(xs.std() + 1e-6)


def _logger(cfg: TrainConfig, out: Path):
    if cfg.tracking == "mlflow":
        try:
            from lightning.pytorch.loggers import MLFlowLogger
        except ImportError as exc:  # pragma: no cover - depends on the optional extra
            raise RunError("--tracking mlflow needs the extra: pip install 'retroscope[tracking]'") from exc
        uri = cfg.tracking_uri or f"sqlite:///{(out / 'mlflow.db').resolve()}"
        return MLFlowLogger(experiment_name=f"retroscope-{cfg.task}", tracking_uri=uri,
                            run_name=out.name)
    from lightning.pytorch.loggers import CSVLogger

    return CSVLogger(save_dir=str(out), name="logs", version="")


def training_observer(task: Task, probability: float, seed: int):
    """The task's online imperfections, applied to a fraction ``probability`` of samples."""
    from retroscope.core.observe import Identity, OnlineObserver, RandomChoice

    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"augment probability must lie in [0, 1], got {probability}")
    transform = task.observe(train=True) if probability > 0 else None
    if transform is None:
        return None
    if probability < 1.0:
        transform = RandomChoice([Identity(), transform], weights=[1.0 - probability, probability])
    return OnlineObserver(transform, seed=seed)


def prepare_run_dir(out: Path, resume: bool, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if resume:
            if not (out / "checkpoints" / "last.ckpt").exists():
                raise RunError(f"{out}: nothing to resume (no checkpoints/last.ckpt)")
            return
        if not overwrite:
            raise RunError(f"{out} already holds a run; use --resume to continue it, "
                           "--overwrite to replace it, or another --out")
        shutil.rmtree(out)
    elif resume:
        raise RunError(f"{out}: nothing to resume")
    out.mkdir(parents=True, exist_ok=True)


def train(task: Task, cfg: TrainConfig, out: Path, resume: bool = False,
          overwrite: bool = False, progress: bool = True, callbacks: list | None = None) -> dict:
    """Train, calibrate and save a run; return the summary (also in ``train_summary.json``).

    ``resume=True`` continues an interrupted run from ``checkpoints/last.ckpt`` with the
    configuration stored in the run (the learning-rate schedule is planned for its epochs).
    ``callbacks`` are extra Lightning callbacks.
    """
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from retroscope.data.dataset import ShardDataset
    from retroscope.train.module import Network, RegressionModule

    out = Path(out)
    if cfg.precision not in PRECISIONS:
        raise RunError(f"precision must be one of {PRECISIONS}, got {cfg.precision!r}")
    prepare_run_dir(out, resume, overwrite)
    if resume:
        cfg = TrainConfig(**json.loads((out / "config.json").read_text()))
    manifest = Manifest.load(Path(cfg.data))
    cfg.data_hash = manifest.config_hash
    cfg.task_config = manifest.config
    if manifest.config != task.config():
        task = task.with_config(**manifest.config)
    if cfg.view:
        task = task.with_config(**cfg.view)
    cfg.view = task.view_config()
    write_json_atomic(out / "config.json", asdict(cfg))
    if getattr(task, "learner", "regression") == "detection":
        from retroscope.train.detection import train_detection

        return train_detection(task, cfg, out, resume=resume, progress=progress,
                               callbacks=callbacks)

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    observer = training_observer(task, cfg.augment, cfg.seed)
    train_set = ShardDataset(cfg.data, task, "train", observer=observer,
                             in_memory=cfg.in_memory, limit=cfg.limit_train)
    val_set = ShardDataset(cfg.data, task, "val", in_memory=cfg.in_memory, limit=cfg.limit_val)
    train_loader = _loader(train_set, cfg.batch_size, True, cfg.num_workers, cfg.seed)
    val_loader = _loader(val_set, cfg.batch_size, False, cfg.num_workers, cfg.seed)

    network = Network(cfg.model, cfg.model_kwargs, task.targets.dim)
    if cfg.precision.startswith("bf16"):
        # oneDNN's bfloat16 convolutions run fastest on NHWC tensors
        network = network.to(memory_format=torch.channels_last)
    mean, std = _input_stats(train_set)
    network.norm.mean.fill_(mean)
    network.norm.std.fill_(std)
    module = RegressionModule(network, align=task.targets.align, lr=cfg.lr,
                              weight_decay=cfg.weight_decay, epochs=cfg.epochs,
                              steps_per_epoch=len(train_loader))
    ckpt = ModelCheckpoint(dirpath=out / "checkpoints", filename="best", monitor="val_loss",
                           mode="min", save_last=True)
    callbacks = [ckpt, EarlyStopping(monitor="val_loss", patience=cfg.patience, mode="min"),
                 *(callbacks or [])]
    if progress:
        from lightning.pytorch.callbacks import RichProgressBar

        callbacks.append(RichProgressBar())
    trainer = L.Trainer(max_epochs=cfg.epochs, accelerator="auto", devices=1,
                        callbacks=callbacks, logger=_logger(cfg, out),
                        enable_progress_bar=progress, enable_model_summary=False,
                        max_time={"minutes": cfg.max_minutes} if cfg.max_minutes else None,
                        precision=cfg.precision, deterministic=False, log_every_n_steps=10)
    t0 = time.perf_counter()
    trainer.fit(module, train_loader, val_loader,
                ckpt_path=str(out / "checkpoints" / "last.ckpt") if resume else None)
    train_seconds = time.perf_counter() - t0
    best = ckpt.best_model_path or str(out / "checkpoints" / "last.ckpt")
    state = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
    module.load_state_dict(state)
    network = module.network.cpu().eval().to(memory_format=torch.contiguous_format)

    from retroscope.infer.predictor import calibrate_and_save

    summary = calibrate_and_save(task, network, cfg, out, train_set, val_set)
    best_loss = ckpt.best_model_score
    summary.update({"train_seconds": train_seconds, "epochs_run": trainer.current_epoch,
                    "best_val_loss": None if best_loss is None else float(best_loss),
                    "n_train": len(train_set), "n_val": len(val_set),
                    "device": str(trainer.strategy.root_device)})
    write_json_atomic(out / "train_summary.json", summary)
    train_set.close()
    val_set.close()
    return summary


def recalibrate(run_dir: Path, data: Path | None = None) -> dict:
    """Refit the conformal intervals and the OOD model of a finished run (weights unchanged),
    on the validation split of ``data`` (default: the run's own dataset)."""
    from retroscope.data.dataset import ShardDataset
    from retroscope.infer.predictor import Predictor, calibrate_and_save

    run_dir = Path(run_dir)
    cfg = TrainConfig(**json.loads((run_dir / "config.json").read_text()))
    predictor = Predictor(run_dir, device="cpu")
    data = Path(data or cfg.data)
    train_set = ShardDataset(data, predictor.task, "train", in_memory=True)
    val_set = ShardDataset(data, predictor.task, "val", in_memory=True)
    summary = calibrate_and_save(predictor.task, predictor.network, cfg, run_dir, train_set,
                                 val_set)
    train_set.close()
    val_set.close()
    return summary
