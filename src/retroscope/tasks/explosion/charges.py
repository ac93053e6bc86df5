"""Final charge states and the times at which each unit of charge appears (charge-up).

An X-ray pulse ionises the molecule sequentially: photoabsorption (mostly at the heavy atoms)
followed by Auger decay, with the charge spreading so that hydrogens end as H+. The model
here is a simple sequential one for the precise mode: every unit charge of atom i
appears at a time

    t = t_abs + t_auger,   t_abs ~ Gaussian pulse envelope (FWHM tau),  t_auger ~ Exp(tau_A),

drawn independently per unit charge; atom i's charge at time t is the number of its times
<= t (q_i <= Z_i). The cheap mode puts every time at 0 (instantaneous charging, atoms at
rest). The final charges come from a per-element table of inclusive ranges, drawn uniformly
(the default is ours, shaped like MOLEXA's variants, e.g. CH2Cl2 as Cl11+ Cl9+ C2+ H+ H+:
hydrogens 1+, first-row atoms 1-5+, second-row atoms up to 11+); pass another table to match
an experiment's charge-state distribution.
"""

from __future__ import annotations

import math

import numpy as np

from retroscope.tasks.explosion.molecules import atomic_numbers

#: one femtosecond in atomic units of time (1 a.u. = 24.189 as)
AU_PER_FS = 41.341374575751
#: inclusive (lowest, highest) final charge per element, drawn uniformly
DEFAULT_CHARGE_RANGES: dict[str, tuple[int, int]] = {
    "H": (1, 1), "C": (1, 4), "N": (1, 5), "O": (1, 5), "F": (1, 5),
    "Si": (2, 8), "P": (2, 9), "S": (2, 10), "Cl": (2, 11)}
#: Auger lifetime (fs) of the default charge-up: K-shell holes of C, N, O live 4-7 fs
DEFAULT_AUGER_FS = 5.0


def draw_charges(symbols, rng: np.random.Generator,
                 ranges: dict[str, tuple[int, int]] | None = None) -> np.ndarray:
    """Final integer charges of ``symbols``, each uniform in its element's inclusive range
    (clipped to 1..Z)."""
    ranges = DEFAULT_CHARGE_RANGES if ranges is None else ranges
    z = atomic_numbers(symbols)
    out = np.empty(len(symbols), dtype=np.int64)
    for i, (s, zi) in enumerate(zip(symbols, z)):
        if s not in ranges:
            raise ValueError(f"no charge range for element {s!r} (have {sorted(ranges)})")
        lo, hi = (int(v) for v in ranges[s])
        lo, hi = max(lo, 1), min(hi, int(zi))
        if lo > hi:
            raise ValueError(f"charge range {ranges[s]} of {s!r} holds no charge in 1..{zi}")
        out[i] = rng.integers(lo, hi + 1)
    return out


def ionisation_times(charges, rng: np.random.Generator, pulse_fwhm_fs: float,
                     auger_fs: float = DEFAULT_AUGER_FS) -> np.ndarray:
    """The time (a.u.) at which each unit charge of each atom appears, shape
    (N, max charge), each row sorted, NaN beyond the atom's charge: a photoabsorption time
    from the Gaussian envelope of FWHM ``pulse_fwhm_fs`` (centred on t = 0) plus an Auger
    delay ~ Exp(``auger_fs``)."""
    q = np.asarray(charges, dtype=np.int64)
    if pulse_fwhm_fs < 0 or auger_fs < 0:
        raise ValueError(f"pulse_fwhm_fs and auger_fs must be >= 0, got {pulse_fwhm_fs}, {auger_fs}")
    width = max(int(q.max(initial=0)), 1)
    sigma = pulse_fwhm_fs / (2.0 * math.sqrt(2.0 * math.log(2.0))) * AU_PER_FS
    times = rng.normal(scale=sigma, size=(len(q), width))
    if auger_fs > 0:
        times += rng.exponential(auger_fs * AU_PER_FS, size=times.shape)
    times[np.arange(width)[None, :] >= q[:, None]] = np.nan
    return np.sort(times, axis=1)  # NaN sorts last
