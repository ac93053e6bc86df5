"""Latency of the live page: from a file landing to its row in SQLite and to the page, as JSON.

    python benchmarks/live.py [--run RUN] [--images 50] [--out FILE] [--screenshot PNG]

Starts ``retroscope serve RUN FOLDER`` (the watcher in the same process, inotify, files
settled for 0.1 s) and opens its page in headless Chromium (Selenium, the distribution's
browser; without one only the SQLite latency is measured). Crystal images land one at a
time, each written aside and renamed into the folder (as an acquisition program that
writes atomically does); the clock starts at the rename. For each image it records the
seconds until its row is in SQLite (the row's commit time) and until the page's "latest"
field names it (the page asks for the state four times a second). Then ``--images`` more
land at once, and the time until all are answered gives the throughput the watcher
sustains. Median and 90th percentile, with the machine.

Without ``--run`` it trains a stand-in first: the default crystal network (ResNet-18, width
32) for one epoch on 96 small crystal images. Its answers are poor, but each costs what a
real run's does on an image of that size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def stand_in_run(root: Path) -> tuple[Path, list[Path]]:
    """A one-epoch crystal run on small images and PNGs of its dataset's samples."""
    from retroscope.compute.campaign import generate
    from retroscope.core.registry import get_task
    from retroscope.data.dataset import ShardDataset
    from retroscope.train.config import train_config
    from retroscope.train.fit import train

    task = get_task("crystal").small()
    generate(task, root / "data", 96, shard_size=32, seed=1, progress=False)
    train(task, train_config(task, root / "data", epochs=1, batch_size=16), root / "run",
          progress=False)
    return root / "run", images_of(task, root / "data", root / "images")


def images_of(task, data: Path, out: Path, n: int = 50) -> list[tuple[Path, float | None]]:
    """PNGs of up to ``n`` test samples of ``data`` as a lab would write them, each with the
    true value of the task's trend column (None if it has none)."""
    from retroscope.data.dataset import ShardDataset

    out.mkdir(parents=True, exist_ok=True)
    test = ShardDataset(data, task, "test", in_memory=True)
    files, truth = task.demo_files(test, out, min(n, len(test)))
    test.close()
    column = task.live_trend[0] if task.live_trend else None
    return [(p, float(t[column]) if column in t else None)
            for p, t in zip(files, truth) if p.suffix == ".png"]


def kinetics_times(truth: list[float | None], decay_s: float) -> list[float] | None:
    """Acquisition times (s) that put the images on an exact exponential decay of their true
    values, N(t) = N_max exp(-t / decay_s), in order of decreasing value; None without
    truth."""
    if any(v is None or v <= 0 for v in truth):
        return None
    top = max(truth)
    return [decay_s * np.log(top / v) for v in truth]


def committed_at(db: Path, name: str) -> float | None:
    with sqlite3.connect(db, timeout=30) as con:
        row = con.execute("SELECT answered_s FROM results WHERE file = ?", (name,)).fetchone()
    return None if row is None else row[0]


def land(image: Path, folder: Path, name: str, stamp: float) -> float:
    """Write ``image`` aside with modification time ``stamp`` (its acquisition time), rename
    it into ``folder`` as ``name``; returns the time of the rename."""
    staged = folder / f".{name}.tmp"
    shutil.copy(image, staged)
    os.utime(staged, (stamp, stamp))
    os.replace(staged, folder / name)
    return time.time()


def fitted_rate(db: Path) -> dict | None:
    """The page's trend fit over the staged series (the shot_* rows)."""
    from retroscope.live.store import ResultStore
    from retroscope.live.trend import fit_trend

    rows = [r for r in ResultStore(db).rows() if r["file"].startswith("shot_")
            and r["status"] == "ok"]
    rows.sort(key=lambda r: r["mtime_ns"])
    t = [r["mtime_ns"] / 1e9 for r in rows]
    a = [r["answer"] for r in rows]
    column = next(k for k in a[0] if f"{k}_low" in a[0])
    fit = fit_trend("exponential_decay", t, [x[column] for x in a],
                    [x[f"{column}_low"] for x in a], [x[f"{column}_high"] for x in a])
    return None if fit is None else {k: fit[k] for k in ("rate_per_s", "rate_err_per_s",
                                                          "reduced_chi2", "n_points")}


def summary(values: list[float]) -> dict:
    a = np.asarray(values)
    return {"median": float(np.median(a)), "p90": float(np.quantile(a, 0.9)),
            "max": float(a.max()), "n": int(a.size)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="a crystal run (default: train a stand-in)")
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--screenshot", type=Path, help="save the page as PNG after the series")
    parser.add_argument("--decay-s", type=float, default=600.0,
                        help="decay time of the staged reaction series (s)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from retroscope.live.browser import chromium, find_browser, wait_for_server

    work = Path(tempfile.mkdtemp(prefix="retroscope-live-bench-"))
    if args.run is None:
        run, images = stand_in_run(work)
    else:
        from retroscope.runs import open_run, read_config

        run = args.run
        images = images_of(open_run(run).task, Path(read_config(run)["data"]), work / "images")
    folder, db = work / "incoming", work / "results.sqlite"
    folder.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).with_name("retroscope")), "serve",
                               str(run), str(folder), "--out", str(db), "--port", str(port),
                               "--settle", "0.1"], env=dict(os.environ),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    driver = None
    try:
        wait_for_server(port, server)
        if find_browser() is not None:
            driver = chromium()
            driver.get(f"http://127.0.0.1:{port}/")
        to_row, to_page = [], []
        start = time.time() - 2 * args.decay_s * 10
        times = None
        if len(images) >= args.images:  # enough images for one staged reaction series
            images = images[:args.images]
            times = kinetics_times([v for _, v in images], args.decay_s)
        order = list(range(len(images)))
        if times is not None:           # the images in the order of the decay
            order.sort(key=lambda i: times[i])
        for i in range(args.images):
            j = order[i % len(order)]
            stamp = start + (times[j] if times else 60.0 * i)
            name = f"shot_{i:04d}.png"
            landed = land(images[j][0], folder, name, stamp)
            while (done := committed_at(db, name)) is None:
                time.sleep(0.005)
            if driver is not None:
                while driver.execute_script(
                        "return document.getElementById('latest-file').textContent") != name:
                    time.sleep(0.01)
                to_page.append(time.time() - landed)
            to_row.append(done - landed)
        if driver is not None and args.screenshot:
            driver.get(f"http://127.0.0.1:{port}/")      # the page as the series left it
            time.sleep(1.5)
            driver.save_screenshot(str(args.screenshot))
        # throughput: a burst of files at once
        burst = [f"burst_{i:04d}.png" for i in range(args.images)]
        t0 = time.time()
        for i, name in enumerate(burst):
            land(images[i % len(images)][0], folder, name, time.time())
        while any(committed_at(db, n) is None for n in burst):
            time.sleep(0.05)
        burst_s = time.time() - t0
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=20)
    import torch

    result = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "torch": torch.__version__, "browser": find_browser()},
              "run": str(run), "images": args.images, "settle_s": 0.1, "page_poll_s": 0.25,
              "landing_to_sqlite_s": summary(to_row),
              "landing_to_page_s": summary(to_page) if to_page else None,
              "staged_decay": None if times is None else {
                  "decay_s": args.decay_s, "true_rate_per_s": 1.0 / args.decay_s,
                  "fitted": fitted_rate(db)},
              "burst_seconds": burst_s, "burst_images_per_s": args.images / burst_s}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        from retroscope.io.atomic import write_json_atomic

        write_json_atomic(args.out, result)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
