"""How far each event's true geometry is from its molecule's equilibrium geometry, as JSON.

    python benchmarks/explosion_reference_shape.py DATA [--split test] [--out FILE]

The reference against which a network's shape errors are read: the aligned RMSD (Kabsch,
proper rotations) between the g2 equilibrium geometry of the event's molecule and the true
positions, over the events of one split. A reader that only recognised the molecule and
answered its equilibrium geometry would score this; the networks' aligned RMSD
(``evaluate``'s ``aligned_rmsd``) is compared with it in the README.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def reference_rmsd(data: Path, split: str) -> np.ndarray:
    """Aligned RMSD (bohr) of the equilibrium geometry to each event's true positions."""
    from retroscope.core.registry import get_task
    from retroscope.data.dataset import ShardDataset
    from retroscope.data.shards import Manifest
    from retroscope.learners.geometry.calibration import split_arrays
    from retroscope.tasks.explosion.frame import aligned_rmsd
    from retroscope.tasks.explosion.molecules import molecule

    task = get_task("explosion").with_config(**Manifest.load(data).config)
    dataset = ShardDataset(data, task, split, in_memory=True)
    tokens, truth = split_arrays(dataset, None)
    out = np.empty(len(tokens))
    for i in range(len(tokens)):
        k = int((tokens[i, :, 0] > 0).sum())
        _, reference = molecule(task.settings.molecules[int(dataset.params["molecule"][i])])
        true = truth[i, :k] - truth[i, :k].mean(axis=0)
        out[i] = aligned_rmsd(reference - reference.mean(axis=0), true)
    dataset.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="an explosion dataset")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    rmsd = reference_rmsd(args.data, args.split)
    result = {"data": str(args.data), "split": args.split, "n_events": len(rmsd),
              "equilibrium_aligned_rmsd_bohr": {
                  "median": float(np.median(rmsd)), "mean": float(rmsd.mean()),
                  "p90": float(np.quantile(rmsd, 0.9))}}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        from retroscope.io.atomic import write_json_atomic

        write_json_atomic(args.out, result)


if __name__ == "__main__":
    main()
