"""Crystal formation on a GPU: the batched torch backend against numba on one CPU core.

    python benchmarks/crystal_gpu.py [--n-ions 300] [--batches 32 128 512] [--out FILE]

For N Ca+ ions at one operating point inside the training box, times the whole formation
(FIRE from a sorted random start + Langevin thermal sampling, the default FormationConfig) of
one padded batch of B crystals with ``backend="torch"`` on CUDA, and of single crystals with
numba on one core of the same machine, and prints crystals per second for each as JSON. It
also reports the crystals' mean length and width from both backends (same physics, different
random draws), so a faster but wrong GPU path would show. Rendering is not included (it is
the same numpy code for both). Needs a CUDA device; exits with a message otherwise.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np


def _shape_um(crystals) -> dict:
    length = [float(np.ptp(c.equilibrium_um[:, 2])) for c in crystals]
    width = [float(np.ptp(c.equilibrium_um[:, 0])) for c in crystals]
    return {"length_um_mean": float(np.mean(length)), "width_um_mean": float(np.mean(width))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-ions", type=int, default=300)
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--numba-repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import numba
    import torch

    from retroscope.tasks.crystal.formation import FormationConfig, form_crystals
    from retroscope.tasks.crystal.trap import OperatingPoint, get_trap

    if not torch.cuda.is_available():
        raise SystemExit("crystal_gpu.py needs a CUDA device")
    op = OperatingPoint(get_trap("oxford"), 250.0, 2.5, 0.3)
    comp, temp_k = {"Ca+": args.n_ions}, 0.01
    rng = np.random.default_rng(0)

    numba.set_num_threads(1)
    cfg = FormationConfig()
    form_crystals([op], [{"Ca+": 20}], [temp_k], rng, cfg)  # compile
    times, numba_crystals = [], []
    for _ in range(args.numba_repeats):
        t0 = time.perf_counter()
        numba_crystals += form_crystals([op], [comp], [temp_k], rng, cfg)
        times.append(time.perf_counter() - t0)
    numba_s = float(np.median(times))

    tcfg = FormationConfig(backend="torch")
    form_crystals([op] * 2, [{"Ca+": 20}] * 2, [temp_k] * 2, rng, tcfg, device="cuda")
    rows = []
    for b in args.batches:
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        crystals = form_crystals([op] * b, [comp] * b, [temp_k] * b, rng, tcfg, device="cuda")
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        rows.append({"batch": b, "seconds": dt, "crystals_per_s": b / dt,
                     "speedup_vs_one_core": b / dt * numba_s,
                     "fire_steps_max": int(max(c.fire_steps for c in crystals)),
                     "residual_force_max": float(max(c.residual_force for c in crystals)),
                     **_shape_um(crystals)})
        print(json.dumps(rows[-1]), flush=True)
    result = {
        "machine": {"platform": platform.platform(), "gpu": torch.cuda.get_device_name(0),
                    "torch": torch.__version__},
        "n_ions": args.n_ions, "operating_point": {"v_rf": 250.0, "v_end": 2.5, "eta": 0.3,
                                                   "temperature_k": temp_k},
        "formation_config": cfg.to_dict() | {"backend": "numba / torch"},
        "numba_one_core": {"median_s_per_crystal": numba_s, "repeats": len(times),
                           **_shape_um(numba_crystals)},
        "torch_cuda": rows,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
