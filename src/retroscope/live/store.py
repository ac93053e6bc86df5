"""The results table of a watched folder: one SQLite row per answer.

A row holds the file (relative to the watched folder), its modification time (ns) and size,
when the watcher first saw it and when the answer was written, the input's label, the status
(``ok``, ``error``, or ``part``: a file of a measurement answered under its first file, named
in ``label``), the error message and the answer's columns as JSON. A file counts as
done, whatever its status, for the modification time it was answered at; a file written
again (a new modification time) is answered again. The database runs in WAL mode, so a page
can read while the watcher writes; each thread opens its own connection.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

from retroscope.io.atomic import json_default

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    file TEXT NOT NULL,
    mtime_ns INTEGER NOT NULL,
    size_bytes INTEGER NOT NULL,
    landed_s REAL NOT NULL,
    answered_s REAL NOT NULL,
    label TEXT,
    status TEXT NOT NULL CHECK (status IN ('ok', 'error', 'part')),
    error TEXT,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_file ON results (file, mtime_ns);
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class StoreError(ValueError):
    """A results database that cannot be used (another run's, not a database)."""


class ResultStore:
    """The results of one run on one folder, in the SQLite file ``path``."""

    def __init__(self, path: Path, run: str | None = None, folder: str | None = None) -> None:
        self.path = Path(path)
        self._local = threading.local()
        try:
            db = self._db()
            db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a results database ({exc})") from exc
        for key, value in (("run", run), ("folder", folder)):
            if value is None:
                continue
            stored = self.info().get(key)
            if stored is not None and stored != value:
                raise StoreError(f"{self.path} holds the results of {key} {stored}, not "
                                 f"{value}: give another --out")
            db.execute("INSERT OR IGNORE INTO info VALUES (?, ?)", (key, value))
        db.commit()

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.row_factory = sqlite3.Row
            self._local.db = db
        return db

    def info(self) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self._db().execute("SELECT * FROM info")}

    def done(self) -> set[tuple[str, int]]:
        """(file, mtime_ns) of every file answered (or given up on)."""
        rows = self._db().execute("SELECT DISTINCT file, mtime_ns FROM results")
        return {(r["file"], r["mtime_ns"]) for r in rows}

    def add(self, file: str, mtime_ns: int, size_bytes: int, landed_s: float,
            answers: list[dict], error: str | None = None, part_of: str | None = None) -> float:
        """Append the answers of one file (or its error, or that it is a part of the
        measurement answered under ``part_of``) in one transaction; returns the time the
        rows were committed."""
        now = time.time()
        if part_of is not None:
            rows = [(file, mtime_ns, size_bytes, landed_s, now, part_of, "part", None, "{}")]
        elif error is not None:
            rows = [(file, mtime_ns, size_bytes, landed_s, now, None, "error", error, "{}")]
        else:
            rows = [(file, mtime_ns, size_bytes, landed_s, now, str(a.get("input", file)),
                     "ok", None, json.dumps(a, default=json_default)) for a in answers]
        db = self._db()
        with db:
            db.executemany("INSERT INTO results (file, mtime_ns, size_bytes, landed_s, "
                           "answered_s, label, status, error, data) VALUES "
                           "(?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return now

    def rows(self, last: int | None = None, after_id: int = 0) -> list[dict]:
        """Answer and error rows with id above ``after_id``, oldest first (only the ``last``
        ones if given); the ``part`` rows are left out."""
        query = "SELECT * FROM results WHERE id > ? AND status != 'part' ORDER BY id"
        found = [self._row(r) for r in self._db().execute(query, (after_id,))]
        return found[-last:] if last else found

    def last_id(self) -> int:
        """The id of the newest row (0 when empty): whether anything changed."""
        return self._db().execute("SELECT COALESCE(MAX(id), 0) FROM results").fetchone()[0]

    def row(self, row_id: int) -> dict | None:
        r = self._db().execute("SELECT * FROM results WHERE id = ?", (row_id,)).fetchone()
        return None if r is None else self._row(r)

    @staticmethod
    def _row(r: sqlite3.Row) -> dict:
        out = {k: r[k] for k in r.keys() if k != "data"}
        out["answer"] = json.loads(r["data"])
        return out
