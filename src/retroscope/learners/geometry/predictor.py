"""A trained ``geometry`` run: K samples of every token's position, their mean as the answer,
calibrated intervals from their spread, and an out-of-distribution flag.

Calibration (``calibration.json``, fitted on the validation split): the spread of the K
samples per coordinate (their standard deviation, in the momentum frame) is rescaled by a
split-conformal factor per axis, so that ``mean +- q std`` covers the nominal fraction of
the real tokens' true coordinates (Angelopoulos & Bates 2021). Out-of-distribution score
(``ood.safetensors``): the Mahalanobis distance of the pooled encoder features to a Gaussian
fitted on training events (Lee et al. 2018), flagged above the 99th percentile of the
validation scores, or when its composition (the kinds of its tokens, e.g. a formula) is
one no training input had.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from retroscope.learners.geometry.edm import EDM
from retroscope.learners.geometry.module import GeometryNetwork
from retroscope.runs import default_device, open_run
from retroscope.train.uncertainty import ConformalCalibrator, FeatureDensity

OOD_FILE = "ood.safetensors"
AXES = ("x", "y", "z")


@dataclass
class Samples:
    """Per event (n), token (N) and axis, in the momentum frame: the mean of the samples
    (the answer), their standard deviation, the rotation from the lab frame (n, 3, 3), the
    pooled features (n, d), and the seconds the sampling took."""

    mean: np.ndarray
    std: np.ndarray
    rotation: np.ndarray
    features: np.ndarray
    seconds: float


@torch.no_grad()
def sample_events(network: GeometryNetwork, tokens: np.ndarray, k: int, seed: int = 0,
                  batch_size: int = 256, steps: int | None = None, device: str = "cpu") -> Samples:
    """``k`` samples per event of ``tokens`` (n, N, C), in batches, seeded."""
    network = network.to(device).eval()
    g = torch.Generator(device=device).manual_seed(seed)
    means, stds, rots, feats = [], [], [], []
    t0 = time.perf_counter()
    for start in range(0, len(tokens), batch_size):
        x = torch.as_tensor(tokens[start:start + batch_size], dtype=torch.float32, device=device)
        s = network.sample(x, k, generator=g, steps=steps)              # (b, k, N, 3)
        means.append(s.mean(1).cpu().numpy())
        stds.append(s.std(1).cpu().numpy() if k > 1 else np.zeros_like(means[-1]))
        rots.append(network.frame(x)[1].cpu().numpy())
        feats.append(network.embed(x).cpu().numpy())
    return Samples(np.concatenate(means), np.concatenate(stds), np.concatenate(rots),
                   np.concatenate(feats), time.perf_counter() - t0)


def composition(tokens: np.ndarray) -> str:
    """The multiset of an input's token kinds (first column), e.g. "1,1,8" for water: an
    input of a composition the training set never had is flagged out of distribution."""
    kinds = np.asarray(tokens)[:, 0]
    return ",".join(str(int(round(k))) for k in sorted(kinds[kinds > 0]))


def real_tokens(tokens: np.ndarray) -> np.ndarray:
    """(n, N) bool: the tokens that are not padding."""
    return np.asarray(tokens)[..., 0] > 0


def positions_in_frame(rotation: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Lab-frame positions (n, N, 3) turned into each event's momentum frame."""
    return np.einsum("bij,bnj->bni", rotation, positions)


def matched_truth(pred: np.ndarray, true: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """``true`` (n, N, 3) with interchangeable tokens (undetected, same Z) assigned to the
    answers they are closest to, as the loss assigns them: which of two missed hydrogens is
    which cannot be known."""
    import torch

    from retroscope.learners.geometry.module import assign_undetected

    return assign_undetected(torch.as_tensor(pred), torch.as_tensor(true),
                             torch.as_tensor(tokens)).numpy()


def build_network(meta: dict) -> GeometryNetwork:
    edm = EDM(**json.loads(meta.get("edm", "{}")))
    return GeometryNetwork(meta["model"], json.loads(meta["model_kwargs"]), edm,
                           tuple(json.loads(meta["position_scale"])),
                           objective=meta.get("objective", "diffusion"))


class Predictor:
    """A finished run, ready to sample: ``Predictor(run_dir).predict(tokens)``."""

    def __init__(self, run_dir: Path, device: str | None = None) -> None:
        from safetensors.numpy import load_file as load_numpy

        self.run = open_run(run_dir)
        self.run_dir, self.meta, self.task = self.run.path, self.run.meta, self.run.task
        self.device = device or default_device()
        self.network = build_network(self.meta)
        self.network.load_state_dict(self.run.state_dict())
        self.network.eval().to(self.device)
        calib = self.run.calibration()
        self.calibrator = ConformalCalibrator.from_dict(calib["conformal"])
        self.samples_per_event = int(calib["samples_per_event"])
        self.compositions = set(calib.get("compositions", []))
        self.density = FeatureDensity.from_state_arrays(load_numpy(str(self.run_dir / OOD_FILE)))
        self.max_tokens, self.columns = json.loads(self.meta["input_shape"])

    def predict(self, tokens: np.ndarray, seed: int = 0, batch_size: int = 256) -> dict:
        """Answers for tokens (n, N, C): mean position, interval (low, high), the spread, in
        the momentum frame; the rotation from the lab frame; OOD score and flag."""
        s = sample_events(self.network, tokens, self.samples_per_event, seed, batch_size,
                          device=self.device)
        real = real_tokens(tokens)
        std = np.maximum(s.std, 1e-6)   # padding has no spread
        low, high = self.calibrator.interval(s.mean.reshape(-1, 3), std.reshape(-1, 3))
        score = self.density.score(s.features)
        novel = self.novel(tokens)
        return {"mean": s.mean * real[..., None], "low": low.reshape(s.mean.shape),
                "high": high.reshape(s.mean.shape), "std": s.std, "rotation": s.rotation,
                "ood_score": score, "novel_composition": novel,
                "ood": (score > self.density.threshold) | novel,
                "ms_per_event": 1e3 * s.seconds / max(len(tokens), 1)}

    def novel(self, tokens: np.ndarray) -> np.ndarray:
        """(n,) bool: inputs whose composition (kinds of token) no training input had
        (False for every input of a run calibrated before compositions were recorded)."""
        if not self.compositions:
            return np.zeros(len(tokens), bool)
        return np.array([composition(t) not in self.compositions for t in tokens])

    def padded(self, tokens: np.ndarray) -> np.ndarray:
        """One input (k, C) padded with zero rows to the network's token count; refused
        (ValueError) when it has more tokens or other columns."""
        t = np.asarray(tokens, dtype=np.float32)
        if t.ndim != 2 or t.shape[1] != self.columns or len(t) > self.max_tokens:
            raise ValueError(f"an input of shape {t.shape}; this run reads at most "
                             f"{self.max_tokens} rows of {self.columns} columns")
        out = np.zeros((self.max_tokens, self.columns), np.float32)
        out[:len(t)] = t
        return out

    def rows(self, items: list, batch_size: int = 256):
        """One row per real token of each input ``items`` = [(label, source, tokens,
        context)]: its name, whether it was detected, its position (momentum frame) with the
        interval, the input's OOD flag and the task's columns; and failures [(label,
        reason)]."""
        kept, tokens, failures = [], [], []
        for label, source, observable, context in items:
            try:
                tokens.append(self.padded(observable))
            except ValueError as exc:
                failures.append((label, str(exc)))
                continue
            kept.append((label, source, context))
        rows = []
        if not tokens:
            return rows, failures
        x = np.stack(tokens)
        pred = self.predict(x, batch_size=batch_size)
        unit = self.task.position_unit
        for i, (label, source, context) in enumerate(kept):
            names = self.task.token_names(x[i])
            for j, name in enumerate(names):
                row = {"input": label, "file": source, "token": j, "name": name,
                       "detected": bool(x[i, j, 1] > 0), **self.task.frame_columns(context)}
                for a, axis in enumerate(AXES):
                    row[f"{axis}_{unit}"] = float(pred["mean"][i, j, a])
                    row[f"{axis}_{unit}_low"] = float(pred["low"][i, j, a])
                    row[f"{axis}_{unit}_high"] = float(pred["high"][i, j, a])
                row["ood_score"] = float(pred["ood_score"][i])
                row["novel_composition"] = bool(pred["novel_composition"][i])
                row["ood"] = bool(pred["ood"][i])
                rows.append(row)
        return rows, failures


def structure_files(task, rows: list[dict], out: Path) -> list[Path]:
    """Write each input's answer through ``task.write_geometry`` into ``<out stem>_structures``
    (inputs named by their row label, made safe for a file name)."""
    import re

    unit = task.position_unit
    by_input: dict[str, list[dict]] = {}
    for row in rows:
        by_input.setdefault(row["input"], []).append(row)
    folder = out.parent / f"{out.stem}_structures"
    written = []
    for label, group in by_input.items():
        names = [r["name"] for r in group]
        xyz = np.array([[r[f"{a}_{unit}"] for a in AXES] for r in group])
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_")[-120:] or "input"
        folder.mkdir(parents=True, exist_ok=True)
        path = task.write_geometry(folder / stem, names, xyz,
                                   comment=f"{label} (momentum frame, ood={group[0]['ood']})")
        if path is not None:
            written.append(path)
    return written
