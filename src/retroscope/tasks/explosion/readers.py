"""Measured ion events from files: CSV (one row per ion) and HDF5 (flat or padded).

CSV columns: ``event, element, charge, px_au, py_au, pz_au`` and optionally ``formula``
(a Hill formula such as ``C2H6O``, or a g2 name such as ``CH3CH2OH``); with momenta in
kg m/s name the columns ``px, py, pz`` and set ``momentum_unit = "si"``. HDF5: either flat
per-ion datasets ``/events/event_index, z, charge, momentum_au`` (m,), (m,), (m,), (m, 3), or
padded ``/events/z, charge, momentum_au, mask`` of shape (n, N), (n, N), (n, N, 3), (n, N);
optionally ``/events/formula``, one string per event (in the order of the padded rows, or of
the sorted event indices).

Settings: ``formula`` (for events without one: the atoms the molecule has, so that missed
ions become query tokens), ``momentum_unit`` (``au`` or ``si``), ``complete`` (the events are
declared complete: an event whose momenta do not sum to about zero, |sum p| / sum |p| above
``imbalance_threshold``, is flagged). Each event is checked on its own; a refused event is
reported with its file and reason, the others are read.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import numpy as np

from retroscope.tasks.explosion.molecules import ELEMENTS, MAX_ATOMS, atomic_numbers

#: one atomic unit of momentum in kg m/s (hbar / bohr)
AU_MOMENTUM_SI = 1.99285191410e-24
SETTINGS = ("formula", "momentum_unit", "complete", "imbalance_threshold")
UNITS = ("au", "si")
Z_OF = dict(zip(ELEMENTS, (int(z) for z in atomic_numbers(ELEMENTS))))


def parse_formula(text: str) -> Counter:
    """Atom counts of a Hill formula (``C2H6O``) or a g2 name (``CH3CH2OH``)."""
    text = str(text).strip()
    if not text or not re.fullmatch(r"([A-Z][a-z]?\d*)+", text):
        raise ValueError(f"formula {text!r} is not a chemical formula such as C2H6O")
    counts: Counter = Counter()
    for symbol, number in re.findall(r"([A-Z][a-z]?)(\d*)", text):
        if symbol not in Z_OF:
            raise ValueError(f"formula {text!r}: element {symbol!r} is not one of {ELEMENTS}")
        counts[symbol] += int(number or 1)
    return counts


def check_settings(settings: dict | None, source: str = "settings") -> dict:
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise ValueError(f"{source}: unknown setting(s) {unknown}; known: {list(SETTINGS)}")
    if settings.get("momentum_unit", "au") not in UNITS:
        raise ValueError(f"{source}: momentum_unit must be one of {UNITS}, "
                         f"got {settings['momentum_unit']!r}")
    if "formula" in settings:
        parse_formula(settings["formula"])
    return settings


def event_tokens(symbols, charges, momenta_au, formula: str | None) -> np.ndarray:
    """The tokens (k, 5) of one event: its detected ions, then the atoms of ``formula`` it
    lacks as query rows (Z, 0, 0, 0, 0). Raises ValueError with the reason."""
    symbols = [str(s).strip() for s in symbols]
    for s in symbols:
        if s not in Z_OF:
            raise ValueError(f"unknown element {s!r} (known: {', '.join(ELEMENTS)})")
    z = np.array([Z_OF[s] for s in symbols], dtype=float)
    q = np.asarray(charges, dtype=float)
    if not np.all(np.isfinite(q)) or np.any(q != np.round(q)) or np.any(q < 1) or np.any(q > z):
        raise ValueError(f"charges {q.tolist()} are not integers in 1..Z")
    p = np.asarray(momenta_au, dtype=float).reshape(-1, 3)
    if not np.all(np.isfinite(p)):
        raise ValueError("a momentum is not finite")
    rows = [np.concatenate([[zi, qi], pi]) for zi, qi, pi in zip(z, q, p)]
    if formula:
        want = parse_formula(formula)
        have = Counter(symbols)
        extra = have - want
        if extra:
            raise ValueError(f"ions {dict(extra)} are not in the formula {formula}")
        rows += [np.array([Z_OF[s], 0, 0, 0, 0], float) for s, k in (want - have).items()
                 for _ in range(k)]
    if not 2 <= len(symbols) or len(rows) > MAX_ATOMS:
        raise ValueError(f"{len(symbols)} ions detected ({len(rows)} atoms); an event needs "
                         f"at least 2 ions and at most {MAX_ATOMS} atoms")
    return np.stack(rows).astype(np.float32)


def imbalance(tokens: np.ndarray) -> float:
    """|sum p| / sum |p| over the detected ions (0 for a complete, ideal event)."""
    p = tokens[tokens[:, 1] > 0, 2:5].astype(float)
    return float(np.linalg.norm(p.sum(0)) / max(np.linalg.norm(p, axis=1).sum(), 1e-300))


def _csv_events(path: Path, scale: float):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields = set(reader.fieldnames or [])
        p_cols = ["px_au", "py_au", "pz_au"] if scale == 1.0 else ["px", "py", "pz"]
        missing = sorted({"event", "element", "charge", *p_cols} - fields)
        if missing:
            raise ValueError(f"{path}: CSV lacks column(s) {missing}")
        events: dict[str, list] = {}
        for row in reader:
            events.setdefault(row["event"], []).append(row)
    for name, rows in events.items():
        seen = [tuple(r.values()) for r in rows]
        if len(set(seen)) != len(seen):
            yield name, ValueError("duplicate rows"), None
            continue
        try:
            p = np.array([[float(r[c]) for c in p_cols] for r in rows]) * scale
            q = np.array([float(r["charge"]) for r in rows])
        except ValueError as exc:
            yield name, ValueError(f"a value is not a number ({exc})"), None
            continue
        formulas = {r.get("formula") for r in rows} - {None, ""}
        if len(formulas) > 1:
            yield name, ValueError(f"rows give different formulas {sorted(formulas)}"), None
            continue
        yield name, ([r["element"] for r in rows], q, p), formulas.pop() if formulas else None


def _hdf5_events(path: Path, scale: float):
    import h5py
    from ase.data import chemical_symbols

    with h5py.File(path, "r") as f:
        if "events" not in f:
            raise ValueError(f"{path}: no /events group")
        g = f["events"]
        need = {"z", "charge", "momentum_au"}
        if not need <= set(g):
            raise ValueError(f"{path}: /events lacks {sorted(need - set(g))}")
        z, q, p = g["z"][()], g["charge"][()], g["momentum_au"][()] * scale
        formulas = ([v.decode() if isinstance(v, bytes) else str(v) for v in g["formula"][()]]
                    if "formula" in g else None)
        if "event_index" in g:
            index = g["event_index"][()]
            groups = {int(e): np.flatnonzero(index == e) for e in np.unique(index)}
        elif "mask" in g:
            mask = g["mask"][()].astype(bool)
            z, q, p = z.reshape(-1), q.reshape(-1), p.reshape(-1, 3)
            flat = np.flatnonzero(mask.reshape(-1))
            width = mask.shape[1]
            groups = {int(e): flat[flat // width == e] for e in range(len(mask))}
        else:
            raise ValueError(f"{path}: /events needs event_index (flat) or mask (padded)")
    if formulas is not None and len(formulas) != len(groups):
        raise ValueError(f"{path}: /events/formula has {len(formulas)} entries for "
                         f"{len(groups)} events")
    for k, (e, rows) in enumerate(groups.items()):
        try:
            symbols = [chemical_symbols[int(v)] for v in z[rows]]
        except (IndexError, ValueError):
            yield str(e), ValueError(f"atomic numbers {z[rows].tolist()} are not elements"), None
            continue
        yield str(e), (symbols, q[rows], p[rows]), formulas[k] if formulas else None


def read_events(paths, settings: dict | None = None):
    """([(label, file, tokens (k, 5), context)], failures [(label, reason)]) of ``paths``;
    ``context`` holds the event's momentum imbalance and formula."""
    settings = check_settings(settings)
    scale = 1.0 / AU_MOMENTUM_SI if settings.get("momentum_unit") == "si" else 1.0
    threshold = float(settings.get("imbalance_threshold", 0.1))
    items, failures = [], []
    for path in map(Path, paths):
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".h5", ".hdf5"):
            failures.append((str(path), "not a CSV or HDF5 event file"))
            continue
        try:
            events = list((_csv_events if suffix == ".csv" else _hdf5_events)(path, scale))
        except (OSError, ValueError, KeyError) as exc:
            failures.append((str(path), str(exc)))
            continue
        for name, event, formula in events:
            label = f"{path}::{name}"
            if isinstance(event, Exception):
                failures.append((label, str(event)))
                continue
            formula = formula or settings.get("formula")
            try:
                tokens = event_tokens(*event, formula)
            except ValueError as exc:
                failures.append((label, str(exc)))
                continue
            ratio = imbalance(tokens)
            items.append((label, str(path), tokens, {
                "formula": formula or "", "momentum_imbalance": ratio,
                "imbalance_flag": bool(settings.get("complete")) and ratio > threshold}))
    return items, failures
