"""`retroscope watch`: every file answered once, bad files recorded, restarts resume."""

import csv
import os
import shutil
import sqlite3
import time

import pytest

from retroscope.live.store import ResultStore, StoreError
from retroscope.live.watch import Watcher


def _watcher(run, folder, db, **kw):
    return Watcher(run, folder, ResultStore(db, run=str(run), folder=str(folder)),
                   settle_s=0.05, retry_s=0.05, **kw)


def test_files_are_answered_once_and_bad_ones_recorded(tmp_path, blob_run, blob_images):
    run, _ = blob_run
    folder = tmp_path / "incoming"
    folder.mkdir()
    for p in blob_images[:2]:
        shutil.copy(p, folder / p.name)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not an image" * 20)
    (folder / ".hidden.png").write_bytes(b"someone's write in progress")
    outside = tmp_path / "secret.png"
    shutil.copy(blob_images[2], outside)
    os.symlink(outside, folder / "link.png")
    db = folder / "results.sqlite"                    # the table may live in the folder
    watcher = _watcher(run, folder, db, csv_path=tmp_path / "rows.csv")
    watcher.drain()

    rows = watcher.store.rows()
    by_file = {r["file"]: r for r in rows}
    assert set(by_file) == {blob_images[0].name, blob_images[1].name, "broken.png", "link.png"}
    assert by_file["broken.png"]["status"] == "error" and by_file["broken.png"]["error"]
    assert "outside the watched folder" in by_file["link.png"]["error"]
    good = by_file[blob_images[0].name]
    assert good["status"] == "ok" and "ood" in good["answer"]
    assert good["answered_s"] >= good["landed_s"]
    with open(tmp_path / "rows.csv") as f:
        assert len(list(csv.DictReader(f))) == 2      # the answered files only

    # a restart answers nothing twice; a new file, and a rewritten one, are answered
    again = _watcher(run, folder, db, csv_path=tmp_path / "rows.csv")
    assert again.drain() == 0
    shutil.copy(blob_images[3], folder / "later.png")
    shutil.copy(blob_images[0], folder / "broken.png")   # the broken file, written again
    again.drain()
    new = again.store.rows(after_id=rows[-1]["id"])
    assert sorted((r["file"], r["status"]) for r in new) == [("broken.png", "ok"),
                                                             ("later.png", "ok")]


def test_a_file_still_being_written_is_answered_once_complete(tmp_path, blob_run, blob_images):
    run, _ = blob_run
    folder = tmp_path / "incoming"
    folder.mkdir()
    data = blob_images[0].read_bytes()
    target = folder / "growing.png"
    target.write_bytes(data[: len(data) // 2])
    watcher = _watcher(run, folder, tmp_path / "r.sqlite")
    watcher.settle_s = 0.3
    assert watcher.step() == 0                        # first sight
    with open(target, "ab") as f:                     # the writer goes on
        f.write(data[len(data) // 2:])
    assert watcher.step() == 0                        # changed: not settled
    watcher.drain()
    rows = watcher.store.rows()
    assert [(r["file"], r["status"]) for r in rows] == [("growing.png", "ok")]


def test_a_database_of_another_run_or_not_a_database_is_refused(tmp_path, blob_run):
    run, _ = blob_run
    ResultStore(tmp_path / "a.sqlite", run="run-a", folder="f")
    with pytest.raises(StoreError, match="run-a"):
        ResultStore(tmp_path / "a.sqlite", run="run-b", folder="f")
    (tmp_path / "b.sqlite").write_text("a text file")
    with pytest.raises(StoreError, match="not a results database"):
        ResultStore(tmp_path / "b.sqlite")
    with sqlite3.connect(tmp_path / "a.sqlite") as db:   # untouched by the refusal
        assert db.execute("SELECT value FROM info WHERE key='run'").fetchone()[0] == "run-a"


def test_watch_command_once(tmp_path, blob_run, blob_images):
    from typer.testing import CliRunner

    from retroscope.cli import app

    run, _ = blob_run
    folder = tmp_path / "incoming"
    folder.mkdir()
    shutil.copy(blob_images[0], folder / "a.png")
    out = tmp_path / "results.sqlite"
    result = CliRunner().invoke(app, ["watch", str(run), str(folder), "--out", str(out),
                                      "--once", "--settle", "0.05"])
    assert result.exit_code == 0, result.output
    assert "1 file(s) answered" in result.output
    missing = CliRunner().invoke(app, ["watch", str(run), str(tmp_path / "nope"), "--once"])
    assert missing.exit_code != 0 and "no such folder" in " ".join(missing.output.split())


def test_a_measurement_of_several_files_waits_for_all_of_them(tmp_path, blob_run, blob_images):
    """A task that groups files (absorption triplets) has them answered together, once."""
    run, _ = blob_run
    folder = tmp_path / "incoming"
    folder.mkdir()
    watcher = _watcher(run, folder, tmp_path / "r.sqlite")

    def pairs(names, settings=None):          # "a_<id>" needs its "b_<id>"
        ids = {n[2:] for n in names}
        groups = [[f"a_{i}", f"b_{i}"] for i in sorted(ids)
                  if f"a_{i}" in names and f"b_{i}" in names]
        grouped = {n for g in groups for n in g}
        return groups, [n for n in names if n not in grouped]

    watcher.task.live_groups = pairs
    shutil.copy(blob_images[0], folder / "a_1.png")
    for _ in range(3):
        watcher.step()
        time.sleep(0.06)
    assert watcher.store.rows() == []         # waiting for b_1.png
    shutil.copy(blob_images[1], folder / "b_1.png")
    for _ in range(4):
        watcher.step()
        time.sleep(0.06)
    rows = watcher.store.rows()
    assert [(r["file"], r["status"]) for r in rows] == [("a_1.png", "ok")] * 2
    assert {name for name, _ in watcher.store.done()} == {"a_1.png", "b_1.png"}
