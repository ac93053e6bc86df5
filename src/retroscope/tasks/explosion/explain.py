"""Ion occlusion: which measured ions the predicted geometry rests on.

For one event, each detected ion in turn is dropped (made a query token: its charge and
momentum removed, its element kept) and the geometry predicted again with the same sampler
noise; after a Kabsch superposition of the two answers (dropping the ion that defines the
frame turns the frame), the shift of every atom is recorded. A large shift of atom i when
ion j is dropped means the answer for i leans on j's momentum.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from retroscope.tasks.explosion.frame import kabsch


def _superpose(mobile: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``mobile`` (k, 3) after the proper rotation and shift that best fit ``target``."""
    rot, shift = kabsch(mobile, target)
    return mobile @ rot.T + shift


def ion_occlusion(predictor, tokens: np.ndarray, seed: int = 0) -> np.ndarray:
    """Shifts (bohr) of shape (k detected ions, k atoms) for one event's tokens (N, 5): row j
    is the answer's change when detected ion j is dropped; NaN rows for ions that cannot be
    dropped (an event keeps at least two ions)."""
    real = tokens[:, 0] > 0
    detected = np.flatnonzero(real & (tokens[:, 1] > 0))
    k = int(real.sum())
    variants = [tokens]
    for j in detected:
        t = tokens.copy()
        t[j, 1:] = 0.0
        variants.append(t)
    pred = predictor.predict(np.stack(variants), seed=seed)["mean"][:, :k]
    base = pred[0]
    shifts = np.full((len(detected), k), np.nan)
    if len(detected) <= 2:
        return shifts
    for row in range(len(detected)):
        moved = _superpose(pred[row + 1], base)
        shifts[row] = np.linalg.norm(moved - base, axis=1)
    return shifts


def occlusion_plot(shifts: np.ndarray, names: list[str], detected: list[int], path: Path,
                   title: str = "") -> Path:
    """Heat map of the shifts: dropped ion (rows) against atom (columns)."""
    from retroscope import plots

    fig, axes = plots.figure(1, 1, (2.0 + 0.5 * len(names), 1.5 + 0.45 * len(detected)))
    ax = axes[0]
    im = ax.imshow(np.nan_to_num(shifts), cmap="magma", aspect="auto")
    ax.set_xticks(range(len(names)), [f"{n}{i}" for i, n in enumerate(names)])
    ax.set_yticks(range(len(detected)), [f"{names[j]}{j}" for j in detected])
    ax.set_xlabel("atom whose position moved")
    ax.set_ylabel("ion dropped")
    if title:
        ax.set_title(title, fontsize=8)
    fig.colorbar(im, ax=ax, label="shift of the answer (bohr)")
    return plots.save(fig, path)


def explain_events(run: Path, files, out: Path, settings: dict | None = None) -> list[dict]:
    """Ion occlusion of every event in ``files``: one CSV row per (dropped ion, atom), a
    PNG heat map per event; returns the rows."""
    import re

    from retroscope.infer.batch import write_rows
    from retroscope.learners.geometry.predictor import Predictor

    predictor = Predictor(run)
    task = predictor.task
    items, failures = task.read_experimental(files, settings)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, source, tokens, _ in items:
        padded = predictor.padded(tokens)
        names = task.token_names(padded)
        detected = [int(j) for j in np.flatnonzero((padded[:, 0] > 0) & (padded[:, 1] > 0))]
        shifts = ion_occlusion(predictor, padded)
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_")[-120:]
        occlusion_plot(shifts, names, detected, out / f"{stem}_occlusion.png", title=label)
        for r, j in enumerate(detected):
            for i, name in enumerate(names):
                rows.append({"input": label, "file": source, "dropped": j,
                             "dropped_name": names[j], "atom": i, "atom_name": name,
                             "shift_bohr": float(shifts[r, i])})
    write_rows(out / "occlusion.csv", rows, failures)
    return rows
