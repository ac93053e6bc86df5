"""The files ``make demo TASK=explosion`` predicts on: test events as a lab writes them.

``events.csv`` (one row per ion, with each event's formula), the same events in a padded
HDF5 file (with ``/events/formula``), one of them with a hydrogen missed by the detector, and ``bad_events.csv``
(a charge above Z, a momentum that is not a number, a lone ion), which are refused by name
while the others are read.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from retroscope.tasks.explosion.frame import canonical_rotation, to_frame
from retroscope.tasks.explosion.readers import Z_OF


def _formula(symbols) -> str:
    counts = {s: list(symbols).count(s) for s in dict.fromkeys(symbols)}
    return "".join(f"{s}{k if k > 1 else ''}" for s, k in counts.items())


def demo_event_files(task, test, files_dir: Path, n: int) -> tuple[list[Path], list[dict]]:
    """Write ``n`` test events (the last with one hydrogen missed) as CSV and HDF5, plus a
    bad file; returns (paths, truth per event: positions per token in the frame the network
    reads)."""
    files_dir = Path(files_dir)
    events, truth = [], []
    for i in range(min(n, len(test))):
        ions = np.asarray(test.observable(i), dtype=float)
        labels = test.labels_row(i)
        k = int(labels["mask"].sum())
        symbols = task.token_names(ions)
        pos = np.asarray(labels["position_bohr"], float)[:k]
        detected = np.ones(k, bool)
        hydrogens = [j for j, s in enumerate(symbols) if s == "H"]
        if i == n - 1 and hydrogens and k > 2:
            detected[hydrogens[-1]] = False
        order = np.r_[np.flatnonzero(detected), np.flatnonzero(~detected)]
        rot = canonical_rotation(ions[:k, 2:5], ions[:k, 0], ions[:k, 1], detected)
        in_frame = to_frame(pos, rot)[order]
        events.append((symbols, ions[:k], detected))
        truth.append({"input": None, "formula": _formula(symbols),
                      "positions": {t: in_frame[t].round(3).tolist() for t in range(k)}})
    csv = files_dir / "events.csv"
    lines = ["event,element,charge,px_au,py_au,pz_au,formula"]
    for e, (symbols, ions, detected) in enumerate(events):
        lines += [f"{e},{s},{int(r[1])},{r[2]:.6g},{r[3]:.6g},{r[4]:.6g},{_formula(symbols)}"
                  for s, r, d in zip(symbols, ions, detected) if d]
    csv.write_text("\n".join(lines) + "\n")
    h5 = files_dir / "events.h5"
    width = max(len(s) for s, _, _ in events)
    z, q = np.zeros((len(events), width), int), np.zeros((len(events), width), int)
    p, mask = np.zeros((len(events), width, 3)), np.zeros((len(events), width), bool)
    for e, (symbols, ions, detected) in enumerate(events):
        kept = ions[detected]
        z[e, :len(kept)] = [Z_OF[s] for s, d in zip(symbols, detected) if d]
        q[e, :len(kept)], p[e, :len(kept)], mask[e, :len(kept)] = kept[:, 1], kept[:, 2:5], True
    with h5py.File(h5, "w") as f:
        g = f.create_group("events")
        g["z"], g["charge"], g["momentum_au"], g["mask"] = z, q, p, mask
        g["formula"] = np.array([_formula(s) for s, _, _ in events], dtype=h5py.string_dtype())
    bad = files_dir / "bad_events.csv"
    bad.write_text("event,element,charge,px_au,py_au,pz_au\n0,O,9,10,20,30\n0,H,1,-1,-2,-3\n"
                   "1,O,2,nan,0,0\n1,H,1,1,1,1\n2,C,2,5,5,5\n")
    out = []
    for path in (csv, h5):
        for e, t in enumerate(truth):
            out.append({**t, "input": f"{path}::{e}"})
    return [csv, h5, bad], out
