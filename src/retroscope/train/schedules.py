"""Learning-rate schedules that keep to a run's time limit as well as to its epoch count.

A run given ``--max-minutes`` is stopped by Lightning's ``Timer`` when its time is up. A
schedule that counts only steps then ends wherever the clock cut it: a one-cycle schedule at a
high learning rate, a step schedule before its decays. The schedules here advance by whichever
is further along, the steps taken or the fraction of the time budget used, so that a run stopped
by the clock has still warmed up and annealed (measured need: 48 000 images took 4.7 min per
epoch instead of the planned 3.5, and the clock stopped a 14-epoch one-cycle run after 11 at a
fifth of its peak rate: 4.18% instead of about 3%). Without a time limit each is exactly its
step-counting counterpart.
"""

from __future__ import annotations

import math

import torch

#: the schedule ends when this fraction of a run's time limit is used (the last validation,
#: checkpoint and calibration come after)
TIME_BUDGET_FRACTION = 0.97


def trainer_time_fraction(trainer) -> float | None:
    """Fraction of ``trainer``'s ``max_time`` used so far, divided by
    :data:`TIME_BUDGET_FRACTION` (None without a trainer or a time limit)."""
    from lightning.pytorch.callbacks import Timer

    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None) \
        if trainer is not None else None
    remaining = timer.time_remaining() if timer is not None else None
    if remaining is None:
        return None
    elapsed = timer.time_elapsed()
    return elapsed / max(elapsed + remaining, 1e-9) / TIME_BUDGET_FRACTION


class _Clocked:
    """Checkpoint state without the clock: a checkpoint holds plain data
    (``torch.load(weights_only=True)`` refuses pickled callables), and a resumed run keeps the
    clock of its own trainer."""

    time_fraction = None

    def _used(self) -> float | None:
        used = self.time_fraction() if self.time_fraction is not None else None
        return None if used is None else min(max(float(used), 0.0), 1.0)

    def state_dict(self) -> dict:
        state = super().state_dict()
        state.pop("time_fraction", None)
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        clock = self.time_fraction
        super().load_state_dict(state_dict)
        self.time_fraction = clock


class TimedOneCycleLR(_Clocked, torch.optim.lr_scheduler.OneCycleLR):
    """``OneCycleLR`` (Smith & Topin 2019) whose position in the cycle is the larger of the
    steps taken and the fraction of the time budget used (``time_fraction()``; None: steps
    only). Stepped once per optimiser step."""

    def __init__(self, optimizer, *, time_fraction=None, **kwargs) -> None:
        self.time_fraction = time_fraction
        super().__init__(optimizer, **kwargs)

    def get_lr(self):
        step = self.last_epoch
        used = self._used()
        if used is not None:
            step = max(step, int(used * (self.total_steps - 1)))
        saved, self.last_epoch = self.last_epoch, min(step, self.total_steps - 1)
        try:
            return super().get_lr()
        finally:
            self.last_epoch = saved


class TimedStepLR(_Clocked, torch.optim.lr_scheduler.LRScheduler):
    """The detection recipe's schedule (Hofer et al. 2021, Sec. 3): the rate is multiplied by
    ``gamma`` every ``step_size`` epochs, after a linear warm-up from ``warmup_start`` of it over
    ``warmup_steps`` optimiser steps. Stepped once per optimiser step; the epoch it is in is the
    larger of steps / ``steps_per_epoch`` and the fraction of the time budget used times
    ``epochs``. Without a clock it equals torch's ``LinearLR`` warm-up chained with an
    epoch-wise ``StepLR``.
    """

    def __init__(self, optimizer, *, step_size: int, gamma: float, steps_per_epoch: int,
                 epochs: int, warmup_steps: int = 0, warmup_start: float = 1e-3,
                 time_fraction=None) -> None:
        if step_size < 1 or steps_per_epoch < 1 or epochs < 1:
            raise ValueError(f"TimedStepLR: step_size ({step_size}), steps_per_epoch "
                             f"({steps_per_epoch}) and epochs ({epochs}) must be >= 1")
        self.step_size, self.gamma = int(step_size), float(gamma)
        self.steps_per_epoch, self.epochs = int(steps_per_epoch), int(epochs)
        self.warmup_steps, self.warmup_start = int(warmup_steps), float(warmup_start)
        self.time_fraction = time_fraction
        super().__init__(optimizer)

    def epoch_position(self) -> float:
        """The (fractional) epoch the schedule is in. The clock moves it at most to the last
        step of the last planned epoch, so it never decays further than counting steps would."""
        epoch = self.last_epoch / self.steps_per_epoch
        used = self._used()
        if used is None:
            return epoch
        last = self.epochs - 1.0 / self.steps_per_epoch
        return max(epoch, min(used * self.epochs, last))

    def get_lr(self):
        decays = math.floor(self.epoch_position() / self.step_size + 1e-9)
        warm = 1.0
        if self.warmup_steps > 0 and self.last_epoch < self.warmup_steps:
            warm = self.warmup_start + (1.0 - self.warmup_start) * self.last_epoch \
                / self.warmup_steps
        return [base * self.gamma ** decays * warm for base in self.base_lrs]


def optimizer_recipe(module) -> dict:
    """The optimiser and schedule of a LightningModule whose hyperparameters hold ``lr``,
    ``weight_decay``, ``epochs``, ``steps_per_epoch``, ``optimizer``, ``momentum``,
    ``step_size`` and ``decay``: AdamW with a one-cycle schedule, or (``optimizer="sgd"``)
    SGD with momentum whose rate is multiplied by ``decay`` every ``step_size`` epochs
    (MATLAB's sgdm recipe). Both follow the clock of a time-limited run. Frozen parameters
    are left out."""
    hp = module.hparams
    params = [p for p in module.parameters() if p.requires_grad]
    steps = hp.steps_per_epoch or module.trainer.estimated_stepping_batches // max(hp.epochs, 1)

    def clock():
        return trainer_time_fraction(module._trainer)

    if hp.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=hp.lr, momentum=hp.momentum,
                              weight_decay=hp.weight_decay)
        sched = TimedStepLR(opt, step_size=max(int(hp.step_size), 1), gamma=hp.decay,
                            steps_per_epoch=max(int(steps), 1), epochs=max(hp.epochs, 1),
                            time_fraction=clock)
    else:
        opt = torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)
        sched = TimedOneCycleLR(opt, max_lr=hp.lr, epochs=hp.epochs,
                                steps_per_epoch=max(int(steps), 1), pct_start=0.15,
                                time_fraction=clock)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
