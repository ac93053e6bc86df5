"""The pmd task's TDSE presets: cost and fidelity, as JSON.

    python benchmarks/pmd.py [--points 5] [--out benchmarks/results/pmd.json]

For each preset (:mod:`retroscope.tasks.pmd.presets`): seconds per map on one core (median
over the (R, I) points), and the correlation of its log-map (log10 of the map over its
maximum, floored at -5 decades, the network's view) with a reference computed on a finer,
larger grid (768 x 768 points of 0.267 bohr, dt = 0.025, the mask from 70 bohr, 300 a.u.
after the pulse) at the same points. The paper's own grid (4096 x 2048, dt 0.0184, to 4 t_f)
is timed for 100 steps in the same run and extrapolated, so the ratio of core-time is measured
on one machine at one moment.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

POINTS = [(2.0, 2e14), (1.5, 1e14), (4.0, 3e14), (6.0, 1.5e14), (8.0, 4e14)]


def log_map(pmd: np.ndarray) -> np.ndarray:
    from retroscope.tasks.pmd.images import FLOOR_DECADES, outside_low_k

    peak = pmd[outside_low_k()].max()
    return np.clip(np.log10(np.clip(pmd / peak, 1e-300, None)), -FLOOR_DECADES, 0.0)


def timed_map(r: float, intensity: float, preset) -> tuple[np.ndarray, float]:
    from retroscope.tasks.pmd.maps import momentum_maps

    t0 = time.perf_counter()
    maps = momentum_maps(r, intensity, preset=preset, precision="complex64")
    return maps["pmd"][0], time.perf_counter() - t0


def paper_seconds_per_map(steps: int = 100) -> dict:
    """The paper's grid: seconds per split-operator step (median of ``steps``), times the
    steps to 4 t_f."""
    import torch

    from retroscope.tasks.pmd.presets import get_preset
    from retroscope.tasks.pmd.pulse import Pulse
    from retroscope.tasks.pmd.tdse import Grid, Propagator, potentials

    p = get_preset("paper")
    grid = Grid(p.nx, p.ny, p.dx)
    prop = Propagator(potentials(grid, 2.0), grid, p.dt, precision="complex64")
    psi = torch.zeros((1, p.nx, p.ny), dtype=torch.complex64)
    psi[0, p.nx // 2, p.ny // 2] = 1.0
    a = torch.zeros(1, dtype=torch.float64)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        psi = prop.step(psi, a)
        times.append(time.perf_counter() - t0)
    total_steps = int(round(4 * Pulse(1e14).duration / p.dt))
    return {"seconds_per_step": float(np.median(times)), "steps_to_4tf": total_steps,
            "seconds_per_map": float(np.median(times)) * total_steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=len(POINTS))
    parser.add_argument("--presets", nargs="+", default=["demo", "fast", "production"])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from retroscope.tasks.pmd.presets import Preset, get_preset

    torch.set_num_threads(1)
    reference = Preset("reference", 768, 768, 0.267, 0.025, 70.0, 70.0, after_pulse=300.0)
    points = POINTS[: args.points]
    result: dict = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, one "
                               f"thread", "points_r_bohr_intensity": points,
                    "reference": {"nx": 768, "ny": 768, "dx": 0.267, "dt": 0.025}}
    ref_maps, ref_seconds = [], []
    for r, i in points:
        m, s = timed_map(r, i, reference)
        ref_maps.append(log_map(m))
        ref_seconds.append(s)
    result["reference"]["seconds_per_map_median"] = float(np.median(ref_seconds))
    for name in args.presets:
        preset = get_preset(name)
        corr, seconds = [], []
        for (r, i), ref in zip(points, ref_maps):
            m, s = timed_map(r, i, preset)
            corr.append(float(np.corrcoef(log_map(m).ravel(), ref.ravel())[0, 1]))
            seconds.append(s)
        result[name] = {"grid": [preset.nx, preset.ny], "dx": preset.dx, "dt": preset.dt,
                        "seconds_per_map_median": float(np.median(seconds)),
                        "log_map_correlation": corr,
                        "log_map_correlation_min": float(min(corr))}
    paper = paper_seconds_per_map()
    result["paper"] = paper
    for name in args.presets:
        result[name]["core_time_ratio_to_paper"] = (
            paper["seconds_per_map"] / result[name]["seconds_per_map_median"])
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
