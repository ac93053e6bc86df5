"""Speed of one 128 x 128 MSFT pattern on ONE core; prints JSON.

Icosahedra with radius uniform in [30, 160] nm and Haar-random orientation (Stielow et al. 2020).
Reports the median time of the voxelisation, of the numpy MSFT and of both together, and of the
torch path on the CPU (one pattern per call, and per pattern in batches). Usage::

    python benchmarks/msft_speed.py [--n 30] [--n-xy 96 --pad-to 240 --n-z 128]
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy / torch load their thread pools

import argparse
import dataclasses
import json
import time

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from retroscope.tasks.diffraction.msft import MSFTConfig, pattern, patterns
from retroscope.tasks.diffraction.shapes import density


def _median_ms(fn, args_list) -> float:
    times = []
    for args in args_list:
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def main() -> None:
    defaults = MSFTConfig()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=30, help="patterns per measurement")
    parser.add_argument("--batch", type=int, default=8, help="batch size of the batched torch path")
    parser.add_argument("--n-xy", type=int, default=defaults.n_xy)
    parser.add_argument("--pad-to", type=int, default=defaults.pad_to)
    parser.add_argument("--n-z", type=int, default=defaults.n_z)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    cfg = MSFTConfig(n_xy=args.n_xy, pad_to=args.pad_to, n_z=args.n_z)
    rng = np.random.default_rng(args.seed)
    radii = rng.uniform(30.0, 160.0, args.n)
    quats = Rotation.random(args.n, rng=rng).as_quat()
    shape_args = [("icosahedron", r, q, cfg.grid) for r, q in zip(radii, quats)]

    pattern(density(*shape_args[0]), cfg)  # warm the geometry cache
    pattern(density(*shape_args[0]), cfg, backend="torch", device="cpu")
    dens = [density(*a) for a in shape_args]
    result = {
        "grid": {"n_xy": cfg.n_xy, "n_z": cfg.n_z, "pad_to": cfg.pad_to, "box_nm": cfg.box_nm,
                 "depth_nm": cfg.depth_nm, "dx_nm": cfg.grid.dx_nm, "dz_nm": cfg.grid.dz_nm,
                 "dq_nm_inv": cfg.dq_nm_inv, "detector_px": cfg.detector_px,
                 "q_edge_over_k": (cfg.detector_px // 2) * cfg.dq_nm_inv / cfg.k_nm_inv},
        "config": {k: str(v) for k, v in dataclasses.asdict(cfg).items()},
        "n_patterns": args.n,
        "threads": {"OMP_NUM_THREADS": os.environ["OMP_NUM_THREADS"],
                    "torch": torch.get_num_threads()},
        "median_ms": {
            "voxelise": _median_ms(density, shape_args),
            "msft_numpy": _median_ms(lambda d: pattern(d, cfg), [(d,) for d in dens]),
            "total_numpy": _median_ms(lambda a: pattern(density(*a), cfg),
                                      [(a,) for a in shape_args]),
            "msft_torch_cpu": _median_ms(lambda d: pattern(d, cfg, "torch", "cpu"),
                                         [(d,) for d in dens]),
        },
    }
    batches = [(np.stack(dens[i:i + args.batch]),)
               for i in range(0, args.n - args.batch + 1, args.batch)]
    per_batch = _median_ms(lambda b: patterns(b, cfg, backend="torch", device="cpu"), batches)
    result["median_ms"][f"msft_torch_cpu_batch{args.batch}_per_pattern"] = per_batch / args.batch
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
