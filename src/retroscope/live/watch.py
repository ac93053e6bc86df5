"""``retroscope watch RUN DIR``: answer every file that lands in a folder, once.

Each pass lists the folder's files (not its subfolders; names starting with ``.`` and
``*.tmp``/``*.part`` files are someone's writes in progress). A file is taken when its size
and modification time have not changed for ``settle_s`` seconds, and it is not open for
writing by an HDF5 writer (HDF5's file lock). It is then read with the run's task, exactly
as ``predict`` reads it, and answered by the run's network; the rows go to the
:class:`~retroscope.live.store.ResultStore` (and a CSV, appended, if asked). A file that
cannot be read or answered is retried once after ``retry_s`` (it may have been caught
half-written), then recorded with its error and skipped: the watcher never stops for a bad
file. A file whose name resolves outside the folder (a symlink) is recorded as refused.
A measurement of several files (``Task.live_groups``: an absorption triplet) is answered
once all of its files have settled, under its first file; the others are recorded as its
parts.

Restarting never answers a file twice: the store records (file, modification time) of every
file it finished. New files are noticed through inotify (``watchdog``, the ``live`` extra)
within milliseconds, and in any case by polling every ``poll_s`` seconds (network file
systems send no inotify events).
"""

from __future__ import annotations

import csv
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from retroscope.live.store import ResultStore

log = logging.getLogger("retroscope.watch")
SKIPPED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp")


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    changed_s: float        # when size or mtime last changed (or the file was first seen)
    landed_s: float         # when the watcher first saw it
    failures: int = 0
    retry_at_s: float = 0.0


class Watcher:
    """Answers the files of ``folder`` with the run ``run_dir`` into ``store``."""

    def __init__(self, run_dir: Path, folder: Path, store: ResultStore,
                 settings: Path | None = None, settle_s: float = 0.2, retry_s: float = 1.0,
                 poll_s: float = 1.0, csv_path: Path | None = None, options: dict | None = None,
                 group_wait_s: float = 30.0):
        from retroscope.infer.batch import load_settings
        from retroscope.runs import run_learner

        self.folder = Path(folder).resolve()
        if not self.folder.is_dir():
            raise ValueError(f"{folder}: not a folder")
        if not os.access(self.folder, os.R_OK | os.X_OK):
            raise ValueError(f"{folder}: cannot list this folder (permission denied)")
        self.store, self.settle_s, self.retry_s, self.poll_s = store, settle_s, retry_s, poll_s
        self.group_wait_s = group_wait_s
        self.learner = run_learner(run_dir)
        self.predictor = self.learner.predictor(run_dir, **(options or {}))
        self.task = self.predictor.task
        self.settings = load_settings(settings)
        if self.settings is not None:
            self.task.check_settings(dict(self.settings), source=str(settings))
        self.csv_path = None if csv_path is None else Path(csv_path)
        store_file = store.path.resolve()   # the table may live in the watched folder
        self._store_files = {Path(f"{store_file}{s}") for s in ("", "-wal", "-shm", "-journal")}
        self._seen: dict[str, _Seen] = {}
        self._done = store.done()
        self._wake = threading.Event()
        self.answered = 0

    # -- one pass ---------------------------------------------------------------------------
    def ready(self, now: float | None = None) -> list[tuple[str, Path, _Seen]]:
        """The files complete and not yet answered: (name relative to the folder, path,
        what was seen of it)."""
        now = time.time() if now is None else now
        ready, present = [], set()
        for entry in os.scandir(self.folder):
            name = entry.name
            if (name.startswith(".") or name.endswith(SKIPPED_SUFFIXES)
                    or self._is_store(entry.path)):
                continue
            try:
                stat = entry.stat()               # follows a symlink
            except OSError:
                continue                          # vanished or a dangling link
            if not entry.is_file():
                continue
            present.add(name)
            if (name, stat.st_mtime_ns) in self._done:
                continue
            seen = self._seen.get(name)
            if seen is None or (seen.size, seen.mtime_ns) != (stat.st_size, stat.st_mtime_ns):
                landed = now if seen is None else seen.landed_s
                self._seen[name] = _Seen(stat.st_size, stat.st_mtime_ns, now, landed)
                continue
            if now - seen.changed_s >= self.settle_s and now >= seen.retry_at_s:
                ready.append((name, Path(entry.path), seen))
        for name in set(self._seen) - present:
            del self._seen[name]                  # deleted before it was answered
        return ready

    def _is_store(self, path: str) -> bool:
        return Path(path).resolve() in self._store_files

    def measurements(self, ready: list[tuple[str, Path, _Seen]], now: float | None = None):
        """The ready files grouped into measurements by the task (``Task.live_groups``,
        e.g. absorption triplets); a file whose partners have not come within
        ``group_wait_s`` of its landing is taken alone (and recorded with the reader's
        complaint)."""
        now = time.time() if now is None else now
        by_name = {name: (name, path, seen) for name, path, seen in ready}
        groups, waiting = self.task.live_groups(sorted(by_name), self.settings)
        late = [[n] for n in waiting if now - by_name[n][2].landed_s > self.group_wait_s]
        return [[by_name[n] for n in group] for group in [*groups, *late]]

    def answer(self, group: list[tuple[str, Path, _Seen]]) -> int:
        """Read and answer one measurement (its files); record the answers under its first
        file, the other files as parts of it (or, after a second failure, the error).
        Returns the number of rows written."""
        name, _, seen = group[0]
        error, rows = None, []
        if any(not path.resolve().is_relative_to(self.folder) for _, path, _ in group):
            error = "refused: the file resolves outside the watched folder (a symlink)"
        else:
            try:
                rows, error = self._predict([path for _, path, _ in group])
            except Exception as exc:  # a bad file must never stop the watcher
                error = f"{type(exc).__name__}: {exc}"
        if error is not None and not error.startswith("refused") and seen.failures == 0:
            for _, _, s in group:
                s.failures, s.retry_at_s = 1, time.time() + self.retry_s
            log.warning("%s: %s (will retry once)", name, error)
            return 0
        self.store.add(name, seen.mtime_ns, seen.size, seen.landed_s, rows, error)
        for part, _, s in group[1:]:
            self.store.add(part, s.mtime_ns, s.size, s.landed_s, [], part_of=name)
        for part, _, s in group:
            self._done.add((part, s.mtime_ns))
            self._seen.pop(part, None)
        if error is not None:
            log.error("%s: skipped: %s", name, error)
            return 1
        if self.csv_path is not None:
            self._append_csv(name, rows)
        self.answered += 1
        return len(rows)

    def _predict(self, paths: list[Path]) -> tuple[list[dict], str | None]:
        if any(_hdf5_being_written(path) for path in paths):
            raise OSError("an HDF5 writer still holds the file")
        items, failures = self.task.read_experimental(paths, self.settings)
        rows, refused = self.learner.predict_rows(self.predictor, items) if items else ([], [])
        problems = failures + refused
        if problems and not rows:
            return [], "; ".join(f"{label}: {reason}" for label, reason in problems)
        return rows, None

    def _append_csv(self, name: str, rows: list[dict]) -> None:
        new = not self.csv_path.exists()
        columns = ["file", *[c for c in rows[0] if c != "file"]]
        with self.csv_path.open("a", newline="") as f:
            writer = csv.DictWriter(f, columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            for row in rows:
                writer.writerow({**row, "file": name})

    def step(self) -> int:
        """One pass: answer every ready measurement. Returns the rows written."""
        return sum(self.answer(group) for group in self.measurements(self.ready()))

    def drain(self) -> int:
        """Answer the files there now (retries included; a measurement still missing files
        waits ``group_wait_s``), then return the rows written."""
        written = self.step()                 # the first sight of each file
        while self._seen:
            time.sleep(max(self.settle_s, 0.05))
            written += self.step()
        return written

    # -- the loop ---------------------------------------------------------------------------
    def run(self, stop: threading.Event, on_pass=None) -> None:
        """Watch until ``stop`` is set: a pass whenever inotify reports a change, after
        ``settle_s`` while files settle, else every ``poll_s``."""
        observer = self._inotify()
        try:
            while not stop.is_set():
                self.step()
                if on_pass is not None:
                    on_pass(self)
                wait = self.settle_s / 2 if self._seen else self.poll_s
                self._wake.wait(wait)
                self._wake.clear()
        finally:
            if observer is not None:
                observer.stop()
                observer.join(timeout=5)

    def _inotify(self):
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:
            log.info("watchdog not installed: polling every %.1f s", self.poll_s)
            return None
        wake = self._wake

        class Wake(FileSystemEventHandler):
            def on_any_event(self, event) -> None:
                wake.set()

        observer = Observer()
        observer.schedule(Wake(), str(self.folder), recursive=False)
        observer.start()
        return observer


def _hdf5_being_written(path: Path) -> bool:
    """True when ``path`` is an HDF5 file that a writer holds open (HDF5's own file lock)."""
    with open(path, "rb") as f:
        if f.read(8) != b"\x89HDF\r\n\x1a\n":
            return False
    import h5py

    try:
        with h5py.File(path, "r"):
            return False
    except OSError as exc:
        return "lock" in str(exc).lower()
