"""The experiments of the explosion task, through the shared pipeline.

- :func:`missing_ions`: test events with no ion missed, one or two hydrogens missed, one
  heavy atom missed; per-coordinate MAE of the detected and the missed atoms apart, from a
  run trained with missed ions; beside it the momentum-conservation fill for one missed ion
  (its momentum is minus the sum of the others, its charge the middle of its element's
  range), read by a run trained on complete events; and the forward fit (:mod:`.baseline`)
  on the first events of each scenario, the missed ions' charges guessed the same way.
- :func:`two_step`: MOLEXA's two-step training: a network pretrained on many cheap events
  and fine-tuned on few precise ones, against the same precise events alone, scored on the
  same precise test split (the ratio of the MAEs; MOLEXA: 2).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from retroscope.io.atomic import write_json_atomic

#: the scenarios of the missing-ion table: (name, hydrogens missed, heavy atoms missed)
SCENARIOS = (("none", 0, 0), ("1 H", 1, 0), ("2 H", 2, 0), ("1 heavy", 0, 1))


def drop_ions(tokens: np.ndarray, hydrogens: int, heavy: int,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """One event's tokens with ``hydrogens`` H ions and ``heavy`` other ions missed (their
    charge and momentum zeroed), and which were missed; None when the event has too few
    (or would keep fewer than two ions)."""
    t = tokens.copy()
    real = t[:, 0] > 0
    h = np.flatnonzero(real & (t[:, 0] == 1))
    other = np.flatnonzero(real & (t[:, 0] > 1))
    if len(h) < hydrogens or len(other) < heavy or real.sum() - hydrogens - heavy < 2:
        return None
    missed = np.r_[rng.choice(h, hydrogens, replace=False),
                   rng.choice(other, heavy, replace=False)].astype(int)
    t[missed, 1:] = 0.0
    out = np.zeros(len(t), bool)
    out[missed] = True
    return t, out


def middle_charge(z: int, charge_ranges: dict) -> int:
    """The guess for a missed ion's charge: the middle of its element's charge range."""
    from ase.data import chemical_symbols

    lo, hi = charge_ranges[chemical_symbols[int(z)]]
    return round((lo + min(hi, z)) / 2)


def fill_missing(tokens: np.ndarray, charge_ranges: dict) -> np.ndarray:
    """The momentum-conservation fill of one missed ion: p = -sum of the detected momenta,
    q = the middle of its element's charge range."""
    t = tokens.copy()
    missed = np.flatnonzero((t[:, 0] > 0) & (t[:, 1] <= 0))
    if len(missed) != 1:
        raise ValueError(f"the fill needs exactly one missed ion, got {len(missed)}")
    i = missed[0]
    t[i, 1] = middle_charge(t[i, 0], charge_ranges)
    t[i, 2:5] = -t[t[:, 1] > 0][:, 2:5].sum(axis=0) + t[i, 2:5]
    return t


def _frame_errors(predictor, tokens, truth, missed) -> dict:
    from retroscope.learners.geometry.predictor import matched_truth, positions_in_frame

    pred = predictor.predict(tokens)
    true = matched_truth(pred["mean"], positions_in_frame(pred["rotation"], truth), tokens)
    err = np.abs(pred["mean"] - true)
    real = tokens[..., 0] > 0
    detected = real & ~missed
    return {"n_events": len(tokens),
            "mae_detected": float(err[detected].mean()),
            "mae_missed": float(err[missed].mean()) if missed.any() else None,
            "mae_all": float(err[real].mean()),
            "ood_fraction": float(pred["ood"].mean())}


def _forward_fit_errors(task, tokens, truth, missed, molecules) -> dict:
    """The forward fit on events ``tokens`` (missed ions' charges guessed by
    :func:`middle_charge`), scored in each event's momentum frame like the network."""
    from retroscope.learners.geometry.predictor import matched_truth
    from retroscope.tasks.explosion.baseline import ForwardFit
    from retroscope.tasks.explosion.frame import canonical_rotation
    from retroscope.tasks.explosion.molecules import molecule

    fit = ForwardFit()
    ranges = task.settings.charge_ranges
    pred, true, seconds = np.zeros_like(truth), np.zeros_like(truth), []
    for i, t in enumerate(tokens):
        k = int((t[:, 0] > 0).sum())
        symbols, reference = molecule(task.settings.molecules[int(molecules[i])])
        guess = np.array([middle_charge(z, ranges) for z in t[:k, 0]], float)
        result = fit.fit(symbols, t[:k], reference, missed_charges=guess)
        rot = canonical_rotation(t[:k, 2:5], t[:k, 0], t[:k, 1], t[:k, 1] > 0)
        pred[i, :k] = result["positions"] @ rot.T
        true[i, :k] = (truth[i, :k] - truth[i, :k].mean(axis=0)) @ rot.T
        seconds.append(result["seconds"])
    true = matched_truth(pred, true, tokens)
    err = np.abs(pred - true)
    real = tokens[..., 0] > 0
    return {"n_events": len(tokens), "mae_detected": float(err[real & ~missed].mean()),
            "mae_missed": float(err[missed].mean()) if missed.any() else None,
            "mae_all": float(err[real].mean()), "s_per_event": float(np.median(seconds))}


def missing_ions(run: Path, data: Path, out: Path, n_events: int = 600,
                 complete_run: Path | None = None, seed: int = 0, baseline_n: int = 0) -> dict:
    """The missing-ion table on the first ``n_events`` test events of ``data``, with the
    forward fit on the first ``baseline_n`` events of each scenario."""
    from retroscope.data.dataset import ShardDataset
    from retroscope.learners.geometry.calibration import split_arrays
    from retroscope.learners.geometry.predictor import Predictor

    predictor = Predictor(run)
    filler = Predictor(complete_run) if complete_run else predictor
    test = ShardDataset(data, predictor.task, "test", in_memory=True)
    tokens, truth = split_arrays(test, n_events)
    molecules = np.asarray(test.params["molecule"])[:len(tokens)]
    test.close()
    rng = np.random.default_rng(seed)
    rows = {}
    for name, n_h, n_heavy in SCENARIOS:
        kept, missed, idx = [], [], []
        for i in range(len(tokens)):
            dropped = drop_ions(tokens[i], n_h, n_heavy, rng)
            if dropped is not None:
                kept.append(dropped[0])
                missed.append(dropped[1])
                idx.append(i)
        if not kept:
            continue
        t, m, truth_s = np.stack(kept), np.stack(missed), truth[idx]
        row = {"network": _frame_errors(predictor, t, truth_s, m)}
        if n_h + n_heavy == 1:
            ranges = predictor.task.settings.charge_ranges
            filled = np.stack([fill_missing(e, ranges) for e in t])
            row["fill_then_complete_model"] = _frame_errors(filler, filled, truth_s, m)
        if baseline_n:
            b = min(baseline_n, len(t))
            row["forward_fit"] = _forward_fit_errors(predictor.task, t[:b], truth_s[:b], m[:b],
                                                     molecules[idx][:b])
            row["network_same_events"] = _frame_errors(predictor, t[:b], truth_s[:b], m[:b])
        rows[name] = row
    result = {"study": "missing-ions", "run": str(run), "complete_run": str(complete_run or run),
              "data": str(data), "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "missing-ions.json", result)
    return result


def two_step(cheap: Path, precise: Path, out: Path, minutes: float,
             fine_tune_minutes: float | None = None, precise_events: int | None = None,
             **train) -> dict:
    """Pretrain on ``cheap`` for ``minutes``, fine-tune on ``precise`` for
    ``fine_tune_minutes`` (default the same), and train on ``precise`` alone for the sum of
    both; score both on the test split of ``precise``. ``precise_events``: both precise runs
    train on the first N precise training events only (MOLEXA's sets were about 100 cheap
    events per precise one). Runs already in ``out`` are kept."""
    from retroscope.core.registry import get_task
    from retroscope.data.shards import Manifest
    from retroscope.evaluate.report import evaluate
    from retroscope.train.config import train_config
    from retroscope.train.fit import train as fit

    fine = minutes if fine_tune_minutes is None else fine_tune_minutes

    def run(name: str, data: Path, mins: float, **extra) -> Path:
        path = out / name
        if not (path / "train_summary.json").exists():
            task = get_task("explosion").with_config(**Manifest.load(data).config)
            cfg = train_config(task, data, max_minutes=mins, epochs=1000,
                               **{**train, **extra})
            fit(task, cfg, path, overwrite=True, progress=False)
        return path

    pre = run("pretrain-cheap", cheap, minutes)
    tuned = run("two-step", precise, fine, init_from=str(pre), limit_train=precise_events)
    alone = run("precise-only", precise, minutes + fine, limit_train=precise_events)
    scores = {}
    for name, path in (("two_step", tuned), ("precise_only", alone), ("cheap_only", pre)):
        m = evaluate(path, precise, "test", out=path / "eval-precise", progress=False)
        summary = json.loads((path / "train_summary.json").read_text())
        scores[name] = {"coordinate_mae": m["coordinate_mae"], "coverage": m["coverage_mean"],
                        "aligned_rmsd_median": m["aligned_rmsd"]["median"],
                        "n_train": summary["n_train"], "epochs_run": summary["epochs_run"],
                        "train_seconds": summary["train_seconds"]}
    result = {"study": "two-step", "cheap": str(cheap), "precise": str(precise),
              "minutes": minutes, "fine_tune_minutes": fine, "precise_events": precise_events,
              "scores": scores,
              "gain_precise_only_over_two_step": scores["precise_only"]["coordinate_mae"]
              / scores["two_step"]["coordinate_mae"],
              "molexa_gain": 2.0}
    write_json_atomic(out / "two-step.json", result)
    return result
