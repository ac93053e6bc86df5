"""``retroscope serve RUN DIR``: a page of the answers as they land, for the experiment.

A Starlette app, served by uvicorn, over the :class:`~retroscope.live.store.ResultStore`
that a :class:`~retroscope.live.watch.Watcher` fills (in the same process, or a separate
``retroscope watch`` writing the same database). Routes:

- ``/``: the page, server-rendered HTML; a few lines of JavaScript ask ``/api/state`` four
  times a second and redraw what changed;
- ``/api/state``: the latest answer with its interval and OOD flag, the last rows, the
  history of the task's trend column (``Task.live_trend``) and its fit;
- ``/image/{id}``: the input file of result row ``id``, as an image;
- ``/plot/history.png``: the history with the fitted trend.

Security: it binds to 127.0.0.1 unless told otherwise; on any other address a token is
required (given with ``--token`` or generated and printed), and every request without it
(``?token=`` or ``Authorization: Bearer``) is answered 401. It serves only result rows and
the files they name, resolved inside the watched folder: no route takes a path, and a file
that resolves outside the folder (a symlink) is refused.
"""

from __future__ import annotations

import html
import io
import secrets
from pathlib import Path

import numpy as np

from retroscope.live.store import ResultStore
from retroscope.live.trend import fit_trend

LOOPBACK = ("127.0.0.1", "localhost", "::1")
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def needs_token(host: str) -> bool:
    return host not in LOOPBACK


def new_token() -> str:
    return secrets.token_urlsafe(24)


class LiveState:
    """What the page shows, read from the store: the task's headline and trend columns."""

    def __init__(self, store: ResultStore, folder: Path, task, headline: list[str],
                 title: str) -> None:
        self.store, self.folder, self.task, self.title = store, Path(folder).resolve(), task, title
        self.headline = [c for c in headline if c not in ("out_of_range", "ood")]
        # without a task's trend: the first headline column that holds numbers, no fit
        self.trend_column, self.trend_model = task.live_trend or (None, None)
        self._cached: tuple[int, dict] = (-1, {})

    def state(self, last: int = 20) -> dict:
        """What the page shows; read and fitted again only when a row was added (the page
        asks four times a second)."""
        newest = self.store.last_id()
        if self._cached[0] != newest:
            self._cached = (newest, self._state(last))
        return self._cached[1]

    def _state(self, last: int) -> dict:
        rows = self.store.rows()
        ok = [r for r in rows if r["status"] == "ok"]
        history = self.history(ok)
        fit = None
        if self.trend_model and len(history["t_s"]) >= 3:
            fit = fit_trend(self.trend_model, history["t_s"], history["value"],
                            history["low"], history["high"])
        return {"title": self.title, "n_rows": len(rows),
                "n_errors": sum(r["status"] == "error" for r in rows),
                "last_id": rows[-1]["id"] if rows else 0,
                "latest": self.describe(rows[-1]) if rows else None,
                "rows": [self.describe(r) for r in rows[-last:]][::-1],
                "trend": {"column": self.trend_column, "model": self.trend_model, "fit": fit,
                          "points": len(history["t_s"])}}

    def describe(self, row: dict) -> dict:
        answer = row["answer"]
        values = {c: {"value": answer.get(c), "low": answer.get(f"{c}_low"),
                      "high": answer.get(f"{c}_high")} for c in self.headline if c in answer}
        return {"id": row["id"], "file": row["file"], "label": row["label"],
                "status": row["status"], "error": row["error"],
                "answered_s": row["answered_s"], "landed_s": row["landed_s"],
                "values": values, "ood": bool(answer.get("ood", False)),
                "out_of_range": answer.get("out_of_range", "")}

    def history(self, ok_rows: list[dict]) -> dict:
        """Times (s, from the files' modification times) and values of the trend column
        (rows whose value is not a number are left out)."""
        if self.trend_column is None:
            self.trend_column = next((c for c in self.headline for r in ok_rows
                                      if _number(r["answer"].get(c))), None)
        c = self.trend_column
        pts = [(r["mtime_ns"] / 1e9, r["answer"][c], r["answer"].get(f"{c}_low"),
                r["answer"].get(f"{c}_high")) for r in ok_rows
               if c and _number(r["answer"].get(c))]
        pts.sort()
        t0 = pts[0][0] if pts else 0.0
        return {"t_s": [p[0] - t0 for p in pts], "value": [p[1] for p in pts],
                "low": [p[2] if p[2] is not None else p[1] for p in pts],
                "high": [p[3] if p[3] is not None else p[1] for p in pts]}

    def image_path(self, row_id: int) -> Path | None:
        """The file of row ``row_id`` if it lies inside the watched folder, else None."""
        row = self.store.row(row_id)
        if row is None:
            return None
        path = (self.folder / row["file"]).resolve()
        if not path.is_relative_to(self.folder) or not path.is_file():
            return None
        return path


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def render_image(path: Path) -> tuple[bytes, str]:
    """(bytes, media type): a PNG or JPEG file as it is, another format's first frame as a
    PNG scaled to its 0.5th-99.5th percentiles."""
    media = IMAGE_TYPES.get(path.suffix.lower())
    if media is not None:
        return path.read_bytes(), media
    from PIL import Image

    from retroscope.io.readers import read_file

    frame = np.asarray(read_file(path).frames[0][1], float)
    if frame.ndim > 2:
        frame = frame.reshape(-1, *frame.shape[-2:])[0]
    lo, hi = np.nanpercentile(frame, [0.5, 99.5])
    scaled = np.clip((frame - lo) / max(hi - lo, 1e-12), 0, 1)
    buf = io.BytesIO()
    Image.fromarray((scaled * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue(), "image/png"


def history_png(live: LiveState) -> bytes:
    """The trend column against time with the 90% intervals and the fitted trend."""
    from retroscope import plots   # an Agg figure, not pyplot: requests run in threads

    ok = [r for r in live.store.rows() if r["status"] == "ok"]
    h = live.history(ok)
    fig, (ax,) = plots.figure(panel_size_in=(6.0, 3.2))
    fig.set_dpi(100)
    if h["t_s"]:
        t, y = np.array(h["t_s"]), np.array(h["value"])
        err = np.vstack([y - np.array(h["low"]), np.array(h["high"]) - y])
        ax.errorbar(t, y, yerr=np.clip(err, 0, None), fmt="o", ms=4, capsize=2,
                    label=f"{live.trend_column} (90% interval)")
        fit = fit_trend(live.trend_model, t, y, h["low"], h["high"]) if (
            live.trend_model and len(t) >= 3) else None
        if fit:
            rate = fit["rate_per_s"]
            err_text = f" ± {fit['rate_err_per_s']:.2g}" if fit["rate_err_per_s"] else ""
            ax.plot(fit["curve_t_s"], fit["curve"], "-",
                    label=f"{fit['model']}: k = {rate:.3g}{err_text} /s")
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel("time since the first file (s)")
    ax.set_ylabel(live.trend_column or "answer")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def make_app(live: LiveState, token: str | None = None):
    """The Starlette app over ``live``; with ``token`` every request must carry it."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    class TokenCheck(BaseHTTPMiddleware):
        async def dispatch(self, request, call_next):
            if token is not None:
                given = request.query_params.get("token", "")
                auth = request.headers.get("authorization", "")
                if auth.lower().startswith("bearer "):
                    given = given or auth[7:]
                if not secrets.compare_digest(given.encode(), token.encode()):
                    return PlainTextResponse("a valid token is required", status_code=401)
            return await call_next(request)

    cache = {"id": -1, "png": b""}

    async def page(request):
        return HTMLResponse(PAGE.replace("{{title}}", html.escape(live.title))
                            .replace("{{token}}", html.escape(token or "")))

    async def state(request):
        return JSONResponse(live.state())

    async def image(request):
        path = live.image_path(request.path_params["row_id"])
        if path is None:
            return PlainTextResponse("no such result in the watched folder", status_code=404)
        try:
            data, media = render_image(path)
        except Exception as exc:  # a corrupt file has a row with its error; no picture
            return PlainTextResponse(f"cannot draw {path.name}: {exc}", status_code=422)
        return Response(data, media_type=media, headers={"Cache-Control": "no-store"})

    async def plot(request):
        last = live.store.last_id()
        if cache["id"] != last:
            cache.update(id=last, png=history_png(live))
        return Response(cache["png"], media_type="image/png",
                        headers={"Cache-Control": "no-store"})

    return Starlette(routes=[Route("/", page), Route("/api/state", state),
                             Route("/image/{row_id:int}", image),
                             Route("/plot/history.png", plot)],
                     middleware=[Middleware(TokenCheck)])


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{title}}</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 1.2em; color: #222; }
 #ood { font-size: 1.4em; font-weight: bold; padding: .4em .8em; border-radius: .3em;
        display: inline-block; }
 #ood.flagged { background: #c62828; color: white; }
 #ood.fine { background: #2e7d32; color: white; }
 #ood.error { background: #ef6c00; color: white; }
 .grid { display: flex; gap: 2em; flex-wrap: wrap; align-items: flex-start; }
 img { max-width: 600px; border: 1px solid #ccc; }
 #latest-image { width: 360px; image-rendering: pixelated; }
 table { border-collapse: collapse; font-size: .9em; }
 td, th { border-bottom: 1px solid #ddd; padding: .2em .6em; text-align: left; }
 .value { font-size: 2em; }
</style></head>
<body>
<h1>{{title}}</h1>
<div class="grid">
 <div>
  <p>latest: <span id="latest-file">waiting for the first file</span></p>
  <p class="value" id="latest-value"></p>
  <p><span id="ood"></span></p>
  <p id="latest-error"></p>
  <img id="latest-image" alt="latest input">
 </div>
 <div>
  <img id="history" alt="history">
  <p id="trend">trend: <span id="trend-rate">needs 3 answers</span></p>
  <p><span id="n-rows">0</span> results, <span id="n-errors">0</span> errors</p>
 </div>
</div>
<h2>last results</h2>
<table><thead><tr><th>id</th><th>file</th><th>answer</th><th>flag</th></tr></thead>
<tbody id="rows"></tbody></table>
<script>
const token = "{{token}}";
const q = token ? "token=" + encodeURIComponent(token) : "";
const url = (p, more) => p + "?" + [q, more].filter(Boolean).join("&");
let shown = -1;
const num = x => typeof x === "number";
const fmt = v => !num(v.value) ? String(v.value ?? "") :
  v.value.toFixed(1) + (num(v.low) && num(v.high) ? " [" + v.low.toFixed(1) + ", " + v.high.toFixed(1) + "]" : "");
const answer = r => r.status === "error" ? "error: " + r.error :
  Object.entries(r.values).map(([k, v]) => k + " = " + fmt(v)).join(", ");
async function refresh() {
  try {
    const s = await (await fetch(url("/api/state"))).json();
    if (s.last_id === shown) return;
    shown = s.last_id;
    document.getElementById("n-rows").textContent = s.n_rows;
    document.getElementById("n-errors").textContent = s.n_errors;
    const r = s.latest;
    if (r) {
      document.getElementById("latest-file").textContent = r.file;
      document.getElementById("latest-value").textContent = r.status === "ok" ? answer(r) : "";
      document.getElementById("latest-error").textContent = r.status === "error" ? r.error : "";
      const ood = document.getElementById("ood");
      ood.className = r.status === "error" ? "error" : (r.ood ? "flagged" : "fine");
      ood.textContent = r.status === "error" ? "FILE NOT READ" :
        (r.ood ? "OUT OF DISTRIBUTION: do not trust this answer" : "in distribution");
      if (r.status === "ok") document.getElementById("latest-image").src = url("/image/" + r.id);
    }
    document.getElementById("history").src = url("/plot/history.png", "v=" + s.last_id);
    const f = s.trend.fit;
    if (f) document.getElementById("trend-rate").textContent =
      "k = " + f.rate_per_s.toPrecision(3) + (f.rate_err_per_s ? " ± " + f.rate_err_per_s.toPrecision(2) : "") +
      " /s (" + s.trend.column + ", " + f.model + ", " + f.n_points + " points)";
    const body = document.getElementById("rows");
    body.replaceChildren(...s.rows.map(r => {
      const tr = document.createElement("tr");
      for (const text of [r.id, r.file, answer(r), r.status === "error" ? "error" : (r.ood ? "OOD" : "")]) {
        const td = document.createElement("td"); td.textContent = text; tr.appendChild(td);
      }
      return tr;
    }));
  } catch (e) { console.log(e); }
}
refresh(); setInterval(refresh, 250);
</script>
</body></html>
"""
