"""What a pmd run answers for maps unlike its training set, as JSON.

    python benchmarks/pmd_ood.py --run RUN [--preset demo] [--out results.json]

Maps simulated here with the run's own numerical preset and pulse, each outside what the
network was trained on (issue: "a transposed map, a HeH+ map and an R = 10 map come back
ood = True"):

* HeH+ at its equilibrium distance (1.46 bohr), the heteronuclear molecule of Table I;
* H2+ at R = 10 bohr (the training range ends at 8 or below);
* an in-range H2+ map written transposed (k_x along the columns) and read with a stated
  k extent, so that it passes the reader's aspect check and only the network can notice;
* the same H2+ map read correctly, as the in-distribution control.

Each is written as an NPY file and read through ``predict``'s path (the task's reader and
the run's predictor); the JSON holds each answer, its interval and its OOD flag.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--intensity", type=float, default=1.5e14, help="W/cm^2")
    parser.add_argument("--r-control", type=float, default=3.0, help="bohr, in range")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from retroscope.infer.batch import predict_files
    from retroscope.runs import open_run

    task = open_run(args.run).task
    s = task.settings
    cases = {"heh_r1.46": ("HeH+", 1.46), "h2_r10": ("H2+", 10.0),
             "h2_control": ("H2+", args.r_control)}
    with tempfile.TemporaryDirectory() as tmp:
        files, settings = {}, {}
        for name, (molecule, r) in cases.items():
            sim = task.with_config(molecule=molecule, r_bohr=[min(r, 1.0), max(r, 8.0)])
            maps = sim.simulate({"r_bohr": np.array([r]),
                                 "intensity_w_cm2": np.array([args.intensity]),
                                 "cep_rad": np.zeros(1), "alpha_deg": np.zeros(1)}, None)
            files[name] = Path(tmp) / f"{name}.npy"
            np.save(files[name], maps["pmd"][0])
        files["h2_transposed"] = Path(tmp) / "h2_transposed.npy"
        np.save(files["h2_transposed"], np.load(files["h2_control"]).T)
        settings_file = Path(tmp) / "stated_extent.json"
        settings_file.write_text(json.dumps({"k_extent_au": [[-4, 4], [-2, 2]]}))
        rows = {}
        for name, path in files.items():
            stated = settings_file if name == "h2_transposed" else None
            got, failures = predict_files(args.run, [path], settings=stated)
            rows[name] = got[0] if got else {"failed": failures}
    keep = ("r_bohr", "r_bohr_low", "r_bohr_high", "intensity_w_cm2", "ood", "ood_score")
    result = {
        "run": str(args.run), "preset": s.preset, "intensity_w_cm2": args.intensity,
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "truth": {k: {"molecule": m, "r_bohr": r} for k, (m, r) in cases.items()}
        | {"h2_transposed": {"molecule": "H2+", "r_bohr": args.r_control}},
        "answers": {k: {c: (v.item() if hasattr(v, "item") else v) for c, v in row.items()
                        if c in keep or c == "failed"} for k, row in rows.items()},
    }
    text = json.dumps(result, indent=2, default=str)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
