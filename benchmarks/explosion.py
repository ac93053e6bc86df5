"""The explosion task's simulator figures, as JSON.

    python benchmarks/explosion.py [--events 4000] [--reference 30] [--out FILE]

For H2O, CH2Cl2 and ethanol (g2 geometries, conformers as in the training sets, charges
from the default table), in the cheap mode (all charges at t = 0) and the precise mode
(charge-up in a 10-fs pulse, 5-fs Auger delays), on one thread:

* events per second of the batched integrator (the default Yoshida-4 steps and plain
  velocity Verlet), median of 5 repeats after a compiling warm-up;
* the same ``--reference`` events integrated by scipy's DOP853 (rtol 1e-11): seconds per
  event, the speed-up, and the largest deviation of any momentum component relative to the
  event's largest momentum;
* the energy check: |final kinetic energy / energy put in by the charges - 1|, largest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
MOLECULES = {"H2O": "H2O", "CH2Cl2": "H2CCl2", "ethanol": "CH3CH2OH"}


def _events(name: str, n: int, precise: bool, seed: int = 0):
    from retroscope.tasks.explosion.charges import draw_charges, ionisation_times
    from retroscope.tasks.explosion.molecules import conformer, masses_u, molecule

    rng = np.random.default_rng(seed)
    symbols, eq = molecule(name)
    k = len(symbols)
    pos = np.stack([conformer(eq, rng) for _ in range(n)])
    q = np.stack([draw_charges(symbols, rng) for _ in range(n)])
    m = np.broadcast_to(masses_u(symbols), (n, k)).copy()
    times = None
    if precise:
        times = np.zeros((n, k, q.max()))
        for i in range(n):
            t = ionisation_times(q[i], rng, pulse_fwhm_fs=10.0, auger_fs=5.0)
            times[i, :, :t.shape[1]] = np.nan_to_num(t)
    return pos, q, m, times


def measure(name: str, precise: bool, n: int, n_reference: int) -> dict:
    from retroscope.tasks.explosion.dynamics import (explode_reference, integrate,
                                                     kinetic_energy)

    pos, q, m, times = _events(name, n, precise)
    out = {"atoms": int(pos.shape[1]), "events": n}
    for label, order in (("yoshida4", 4), ("verlet", 2)):
        integrate(pos[:8], q[:8], m[:8], None if times is None else times[:8], order=order)
        seconds = []
        for _ in range(5):
            t0 = time.perf_counter()
            result = integrate(pos, q, m, times, order=order)
            seconds.append(time.perf_counter() - t0)
        ker = kinetic_energy(result.momenta_au, m)
        out[label] = {"events_per_s": n / float(np.median(seconds)), "steps": result.steps,
                      "energy_error_max": float(np.max(np.abs(
                          ker / result.deposited_energy_hartree - 1)))}
        if order == 4:
            fast = result.momenta_au
    deviation, t_ref = [], []
    for i in range(n_reference):
        t0 = time.perf_counter()
        ref = explode_reference(pos[i], q[i], m[i], None if times is None else times[i])
        t_ref.append(time.perf_counter() - t0)
        deviation.append(np.abs(fast[i] - ref).max() / np.abs(ref).max())
    out["solve_ivp_s_per_event"] = float(np.median(t_ref))
    out["speedup_vs_solve_ivp"] = out["yoshida4"]["events_per_s"] * out["solve_ivp_s_per_event"]
    out["deviation_max"] = float(np.max(deviation))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--reference", type=int, default=30)
    parser.add_argument("--out", type=Path, default=RESULTS / "explosion.json")
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    import torch

    result = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "threads": 1, "torch": torch.__version__}, "simulator": {}}
    with threadpool_limits(1):
        for mode in ("cheap", "precise"):
            for label, name in MOLECULES.items():
                n = args.events if mode == "cheap" else max(args.events // 10, 50)
                result["simulator"][f"{label}/{mode}"] = measure(name, mode == "precise", n,
                                                                 args.reference)
                print(label, mode, json.dumps(result["simulator"][f"{label}/{mode}"]),
                      flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
