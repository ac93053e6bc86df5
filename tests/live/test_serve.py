"""`retroscope serve`: the state it serves, its token, and no file outside the folder."""

import json
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from retroscope.live.server import LiveState, make_app, needs_token
from retroscope.live.store import ResultStore
from retroscope.live.watch import Watcher

pytest.importorskip("uvicorn")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path, blob_run, blob_images):
    """A served folder with two good files, a symlink out of the folder and a corrupt
    file, answered; the token 's3cret'. Yields (base URL, rows by file)."""
    import uvicorn

    run, _ = blob_run
    folder = tmp_path / "incoming"
    folder.mkdir()
    for p in blob_images[:2]:
        shutil.copy(p, folder / p.name)
    (tmp_path / "secret.txt").write_text("root:x:0:0")
    os.symlink(tmp_path / "secret.txt", folder / "escape.png")
    (folder / "broken.png").write_bytes(b"garbage")
    store = ResultStore(tmp_path / "r.sqlite")
    watcher = Watcher(run, folder, store, settle_s=0.05, retry_s=0.05)
    watcher.drain()
    live = LiveState(store, folder, watcher.task, watcher.learner.headline(watcher.task), "t")
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(make_app(live, "s3cret"), host="127.0.0.1", port=port,
                                        log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", {r["file"]: r for r in store.rows()}
    srv.should_exit = True
    thread.join(timeout=10)


def _get(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {})) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_every_request_needs_the_token(server):
    base, _ = server
    for path in ("/", "/api/state", "/image/1", "/plot/history.png"):
        assert _get(base + path)[0] == 401
        assert _get(base + path + "?token=wrong")[0] == 401
        assert _get(base + path, {"Authorization": "Bearer wrong"})[0] == 401
    assert _get(base + "/api/state?token=s3cret")[0] == 200
    assert _get(base + "/api/state", {"Authorization": "Bearer s3cret"})[0] == 200


def test_state_image_and_plot(server, blob_images):
    base, rows = server
    status, body = _get(base + "/api/state?token=s3cret")
    state = json.loads(body)
    assert state["n_rows"] == 4 and state["n_errors"] == 2
    shown = {r["file"]: r for r in state["rows"]}
    assert shown["broken.png"]["status"] == "error"
    good = shown[blob_images[0].name]
    assert good["status"] == "ok" and isinstance(good["ood"], bool) and good["values"]
    status, png = _get(base + f"/image/{rows[blob_images[0].name]['id']}?token=s3cret")
    assert status == 200 and png == blob_images[0].read_bytes()
    status, plot = _get(base + "/plot/history.png?token=s3cret")
    assert status == 200 and plot[:4] == b"\x89PNG"
    page = _get(base + "/?token=s3cret")[1].decode()
    assert 'id="ood"' in page and "s3cret" in page


def test_nothing_outside_the_folder_is_served(server):
    base, rows = server
    escape = rows["escape.png"]["id"]
    for path in (f"/image/{escape}", "/image/../../secret.txt", "/image/..%2F..%2Fsecret.txt",
                 "/../secret.txt", "//etc/passwd", "/etc/passwd", "/image/-1",
                 "/image/999999", "/static/../../secret.txt"):
        status, body = _get(base + path + "?token=s3cret")
        assert status in (404, 422), path
        assert b"root:" not in body, path


def test_a_token_is_needed_beyond_loopback():
    assert not needs_token("127.0.0.1") and not needs_token("localhost")
    assert needs_token("0.0.0.0") and needs_token("192.168.1.20")


def test_serve_refuses_a_folder_it_cannot_read(tmp_path, blob_run):
    from typer.testing import CliRunner

    from retroscope.cli import app

    result = CliRunner().invoke(app, ["serve", str(blob_run[0]), str(tmp_path / "missing")])
    assert result.exit_code != 0 and "no such folder" in " ".join(result.output.split())


def test_a_task_without_a_trend_plots_its_first_numeric_column(tmp_path, blob_task):
    """Rows whose first headline columns are words (an element, a label) still give a
    history: the first column holding numbers, with no fit."""
    from retroscope.live.server import history_png

    store = ResultStore(tmp_path / "r.sqlite")
    for i in range(4):
        store.add(f"e{i}.csv", int(i * 1e9), 1, 0.0,
                  [{"input": f"e{i}", "name": "O", "x_bohr": 0.1 * i, "ood": False}])
    live = LiveState(store, tmp_path, blob_task, ["input", "name", "x_bohr", "ood"], "t")
    state = live.state()
    assert state["trend"]["column"] == "x_bohr" and state["trend"]["fit"] is None
    assert state["latest"]["values"]["name"]["value"] == "O"
    assert history_png(live)[:4] == b"\x89PNG"


def test_serve_says_when_it_may_not_read_the_folder(tmp_path, blob_run, monkeypatch):
    """(Tests run as root here, which reads everything: the permission answer is faked.)"""
    from typer.testing import CliRunner

    from retroscope.cli import app

    folder = tmp_path / "locked"
    folder.mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != folder)
    result = CliRunner().invoke(app, ["serve", str(blob_run[0]), str(folder)])
    assert result.exit_code != 0
    said = " ".join(result.output.replace("│", " ").split())
    assert "locked" in said and ("not readable" in said or "cannot read this folder" in said)
