"""Training on several processes: Lightning's DDP, and what a run directory needs from it.

``retroscope train ... --devices N --strategy ddp`` runs N processes (``--num-nodes`` more
under SLURM's ``srun``). Each holds a replica of the network and a shard of every epoch's
training batches (Lightning's ``DistributedSampler``); the gradients are averaged across
processes (gloo on CPUs, NCCL on GPUs) before every step, so the replicas stay identical and
an epoch takes 1/N of the steps, each with N times the samples. The logged losses are
averaged across processes (``sync_dist``), so early stopping and the best checkpoint see the
whole validation split.

Only process 0 (:func:`process_rank`) writes the run directory: its configuration, the
checkpoints and logs (Lightning's own rule), the calibration and the summary. The others
train and leave. :class:`ReplicaCheck` compares the replicas' weights at the end of
training, and the summary records the largest difference (0.0 when DDP worked).

Lightning starts processes 1..N-1 itself by running the same command line again with
``LOCAL_RANK`` set; under ``srun`` SLURM starts them all and Lightning reads ``SLURM_PROCID``.
"""

from __future__ import annotations

import torch


def process_rank() -> int:
    """The global rank of this process as Lightning's launchers set it (``RANK``,
    ``LOCAL_RANK``, ``SLURM_PROCID``): 0 in a single process."""
    from lightning.pytorch.utilities import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0)


def world_size(cfg) -> int:
    """Processes a run trains on: devices per node times nodes."""
    return max(1, int(cfg.devices)) * max(1, int(cfg.num_nodes))


def strategy(cfg) -> str:
    """Lightning's strategy for ``cfg``: ``ddp`` (a process per device, started by running
    the command again; not ``ddp_spawn``, which must pickle the datasets) when several
    processes train and the strategy was left on ``auto``."""
    if cfg.strategy == "auto" and world_size(cfg) > 1:
        return "ddp"
    return cfg.strategy


def parameter_fingerprint(module) -> torch.Tensor:
    """Three float64 numbers that differ between two networks whose weights differ: the sum
    of all parameters, their sum weighted by position, and their largest magnitude."""
    flat = torch.cat([p.detach().double().flatten().cpu() for p in module.parameters()])
    ramp = torch.linspace(0.0, 1.0, flat.numel(), dtype=torch.float64)
    return torch.stack([flat.sum(), (flat * ramp).sum(), flat.abs().max()])


def replica_check():
    """A Lightning callback that gathers every process's :func:`parameter_fingerprint` when
    training ends; ``.max_difference`` is the largest difference from process 0's."""
    from lightning.pytorch.callbacks import Callback

    class ReplicaCheck(Callback):
        max_difference: float | None = None

        def on_train_end(self, trainer, module) -> None:
            mine = parameter_fingerprint(module).to(module.device)
            gathered = trainer.strategy.all_gather(mine).reshape(-1, mine.numel())
            self.max_difference = float((gathered - gathered[0]).abs().max())

    return ReplicaCheck()
