"""The live web viewer as an output: ``edgedepth stream SRC --out http://127.0.0.1:8080``, or ``serve``.

Built on the standard library's ``http.server`` (a ``ThreadingHTTPServer``, one thread per client): no
dependency to install on a robot, and MJPEG over HTTP needs nothing more. One page shows each source's
camera and colourised depth side by side (``/stream.mjpg?source=i``, ``multipart/x-mixed-replace``) and
polls ``/stats`` (JSON: FPS, latency p50, drops, backend, model). ``/snapshot?source=i`` returns the newest
inverse depth as a 16-bit PNG, its scale and offset in the ``X-Depth-Scale`` and ``X-Depth-Offset``
headers (and inside the PNG). ``source`` defaults to 0.

``render`` publishes each result to its source's :class:`Latest`. A client never slows the stream: each
waits for a frame newer than the one it last sent, so a slow client skips frames rather than queueing them,
and each frame is JPEG-encoded at most once, lazily, however many clients watch (``view_fps`` caps how
often). Closing wakes every client; their threads end within a second.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ..errors import InputError, choices
from ..imageio import encode_png16
from ..postprocess import COLORMAPS, ValueRange, side_by_side
from .http_guard import (
    HEADER_TIMEOUT_S,
    MAX_CLIENTS,
    SECURITY_HEADERS,
    GuardedHTTPServer,
    HeaderDeadline,
    host_allowed,
)

if TYPE_CHECKING:
    from ..result import DepthResult

BOUNDARY = "edgedepth-frame"
WAIT_S = 0.5  # how often a waiting client looks at the stop flag

PAGE_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgedepth</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { margin: 0; background: #111; color: #ddd; font: 15px system-ui, sans-serif; }
 header { padding: 8px 14px; display: flex; gap: 18px; align-items: baseline; flex-wrap: wrap; }
 h1 { font-size: 17px; margin: 0; color: #fff; }
 #stats { font-variant-numeric: tabular-nums; }
 img { display: block; max-width: 100%; margin: 0 auto; background: #000; }
 a { color: #8cf; }
</style></head>
<body>
<header><h1>edgedepth</h1><span>camera | depth (near is warm)</span>
<span id="stats">waiting for the first frame...</span>{snapshots}</header>
{views}
<script>
async function poll() {
  try {
    const s = await (await fetch("/stats", {cache: "no-store"})).json();
    document.getElementById("stats").textContent =
      `FPS ${s.fps.toFixed(1)} | latency p50 ${s.latency_ms_p50.toFixed(1)} ms | ` +
      `drops ${s.dropped} | ${s.backend} | ${s.model} | ${s.source_state} | viewers ${s.clients}`;
  } catch (e) {
    document.getElementById("stats").textContent = "server unreachable";
  }
}
poll(); setInterval(poll, 500);
</script>
</body></html>
"""


def page(sources: int) -> str:
    """The viewer's page for ``sources`` sources: one live view and one snapshot link each."""
    if sources == 1:
        views = '<img id="view" src="/stream.mjpg" alt="camera and depth, side by side">'
        snapshots = '<a href="/snapshot">16-bit snapshot</a>'
    else:
        views = "\n".join(
            f'<img id="view{i}" src="/stream.mjpg?source={i}" alt="source {i}: camera and depth, side by side">'
            for i in range(sources)
        )
        snapshots = " ".join(f'<a href="/snapshot?source={i}">snapshot {i}</a>' for i in range(sources))
    return PAGE_TEMPLATE.replace("{views}", views).replace("{snapshots}", snapshots)


def source_index(query: str, sources: int) -> int | None:
    """The ``source`` of a request's query (0 when absent); None when it names no source here."""
    values = urllib.parse.parse_qs(query).get("source", ["0"])
    text = values[-1]
    if not text.isdigit() or len(text) > 6 or int(text) >= sources:
        return None
    return int(text)


@dataclass
class Published:
    frame: np.ndarray
    result: DepthResult
    seq: int
    jpeg: bytes | None = None


@dataclass
class Latest:
    """The newest frame and result, with a sequence number clients wait on; encoded once, on demand."""

    cmap: str = "turbo"
    view_fps: float = 15.0
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _encode_lock: threading.Lock = field(default_factory=threading.Lock)
    _item: Published | None = None
    _range: ValueRange = field(default_factory=ValueRange)
    closed: bool = False

    def publish(self, frame: np.ndarray, result: DepthResult) -> None:
        with self._cond:
            seq = self._item.seq + 1 if self._item else 1
            self._item = Published(frame, result, seq)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def newer_than(self, seq: int, timeout_s: float = WAIT_S) -> Published | None:
        """The newest item if its number is above ``seq`` (waiting up to ``timeout_s``), else None."""
        with self._cond:
            self._cond.wait_for(
                lambda: self.closed or (self._item is not None and self._item.seq > seq), timeout_s
            )
            item = self._item
        return item if item is not None and item.seq > seq and not self.closed else None

    def jpeg(self, item: Published) -> bytes:
        """The side-by-side JPEG of ``item``, encoded by the first client that asks."""
        with self._encode_lock:
            if item.jpeg is None:
                depth = item.result.colorize(
                    self.cmap,
                    value_range=self._range(item.result.model_inverse_depth),
                    at_model_resolution=True,
                )
                ok, buf = cv2.imencode(
                    ".jpg", side_by_side(item.frame, depth), [cv2.IMWRITE_JPEG_QUALITY, 80]
                )
                if not ok:
                    raise InputError("could not encode a frame as JPEG")
                item.jpeg = buf.tobytes()
            return item.jpeg

    def frames(self, stop: threading.Event) -> Iterator[bytes]:
        """JPEGs for one client: always the newest frame, at most ``view_fps`` a second."""
        seq, period = 0, 1.0 / self.view_fps
        while not stop.is_set() and not self.closed:
            t0 = time.monotonic()
            item = self.newer_than(seq)
            if item is None:
                continue
            seq = item.seq
            yield self.jpeg(item)
            rest = period - (time.monotonic() - t0)
            if rest > 0:
                stop.wait(rest)


def check_view_options(cmap: str, view_fps: float) -> None:
    """Refuse an unknown colour map or a rate that is not positive and finite (nan or inf would lift the
    cap), before anything starts."""
    if not (math.isfinite(view_fps) and view_fps > 0):
        raise InputError(f"--view-fps {view_fps}: give a positive, finite rate")
    if cmap.lower() not in COLORMAPS:
        raise InputError(f"--cmap {cmap!r} is not a known colour map; choose one of {choices(COLORMAPS)}")


class WebOutput:
    """Serve what ``render(frame, result, index)`` publishes to browsers, one view per source.

    ``port=0`` picks a free port (see ``url``); a port in use raises InputError naming it. Requests are
    answered only for Host values that are IP literals, ``localhost`` or in ``allow_hosts`` (see
    ``edgedepth.output.http_guard``); ``max_clients`` connections at most, each with ``header_timeout_s`` to
    send its request header. ``stats`` supplies ``/stats`` (the stream's figures); the number of viewers
    is added. Serving starts at once; ``close()`` stops it.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        sources: int = 1,
        cmap: str = "turbo",
        view_fps: float = 15.0,
        allow_hosts: Sequence[str] = (),
        max_clients: int = MAX_CLIENTS,
        header_timeout_s: float = HEADER_TIMEOUT_S,
        stats: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise InputError(f"--port {port}: give a TCP port between 1 and 65535 (0 picks a free one)")
        check_view_options(cmap, view_fps)
        self.allow_hosts = frozenset(h.lower() for h in allow_hosts)
        self.latest = [Latest(cmap=cmap, view_fps=view_fps) for _ in range(sources)]
        self.page = page(sources)
        self.stop = threading.Event()
        self.clients = 0
        self._clients_lock = threading.Lock()
        self._stats = stats or dict
        try:
            self.httpd = GuardedHTTPServer((host, port), _handler_for(self), max_clients, header_timeout_s)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise InputError(f"port {port} on {host} is in use; choose another with --port") from None
            raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.2,), name="edgedepth-serve-http", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = str(self.httpd.server_address[0]), self.httpd.server_address[1]
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def render(
        self, frame: np.ndarray, result: DepthResult, index: int = 0, stamp_s: float | None = None
    ) -> bool:
        """Publish source ``index``'s newest frame and depth; True (a viewer never ends the stream)."""
        self.latest[index].publish(frame, result)
        return True

    def summary(self) -> str:
        return f"web viewer {self.url}: {len(self.latest)} view(s), closed"

    def stats(self) -> dict[str, Any]:
        return {**self._stats(), "clients": self.clients, "sources": len(self.latest)}

    def close(self) -> None:
        """Stop serving; clients are woken and their threads end. Returns within about 2 s."""
        if self.stop.is_set():
            return
        self.stop.set()
        for latest in self.latest:
            latest.close()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=1.0)

    def __enter__(self) -> WebOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_web_target(url: str) -> tuple[str, int]:
    """``http://HOST:PORT`` (the port defaults to 8080; ``[::1]`` for IPv6) as (host, port); else InputError."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme != "http" or not parts.hostname or port == -1 or parts.path not in ("", "/"):
        raise InputError(
            f"--out {url!r}: give the viewer's address as http://HOST:PORT, e.g. http://127.0.0.1:8080"
        )
    return parts.hostname, 8080 if port is None else port


def _handler_for(server: WebOutput) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"
        default_request_version = "HTTP/1.0"  # every answer has a status line, even to a malformed request
        server_version = "edgedepth"
        sys_version = ""  # the Server header names no Python version
        timeout = 10.0  # a client that stops reading for this long is dropped, and its thread ends
        _source = 0  # the request's ?source=

        def setup(self) -> None:
            super().setup()
            self._deadline = HeaderDeadline(
                self.connection, self.client_address[0], server.httpd.header_timeout_s
            )

        def parse_request(self) -> bool:
            """The request line and headers (the deadline runs until both are in); only one Host."""
            try:
                parsed = super().parse_request()
            finally:
                self._deadline.done()
            if not parsed or self._deadline.expired:
                return False
            if self.request_version == "HTTP/0.9":  # its answers have no status line and no headers
                self.request_version = "HTTP/1.0"
                self.send_error(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "HTTP/1.0 or 1.1 only")
                return False
            if len(self.headers.get_all("Host") or []) > 1:
                self.send_error(HTTPStatus.BAD_REQUEST, "more than one Host header")
                return False
            return True

        def end_headers(self) -> None:
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
            super().end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the CLI prints its own status
            pass

        def do_GET(self) -> None:
            if not host_allowed(self.headers.get("Host"), server.allow_hosts):
                self.send_error(
                    HTTPStatus.MISDIRECTED_REQUEST, "unknown Host; run with --allow-host NAME to serve it"
                )
                return
            path, _, query = self.path.partition("?")
            source = source_index(query, len(server.latest))
            if source is None:
                self.send_error(
                    HTTPStatus.NOT_FOUND, f"no such source; this viewer has {len(server.latest)}: ?source=0.."
                )
                return
            self._source = source
            routes = {
                "/": self._page,
                "/stream.mjpg": self._mjpeg,
                "/stats": self._stats,
                "/snapshot": self._snapshot,
            }
            route = routes.get(path)
            if route is None:
                self.send_error(HTTPStatus.NOT_FOUND, f"no {path}; try / /stream.mjpg /stats /snapshot")
                return
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, TimeoutError):  # the client left
                route()

        def _send(self, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def _page(self) -> None:
            self._send(server.page.encode(), "text/html; charset=utf-8")

        def _stats(self) -> None:
            self._send(json.dumps(server.stats()).encode(), "application/json")

        def _snapshot(self) -> None:
            item = server.latest[self._source].newer_than(0, timeout_s=2.0)
            if item is None:
                self.send_error(HTTPStatus.SERVICE_UNAVAILABLE, "no frame yet")
                return
            data, info = encode_png16(item.result.inverse_depth, "snapshot.png")
            headers = {"X-Depth-Scale": repr(info["scale"]), "X-Depth-Offset": repr(info["offset"]),
                       "X-Depth-Formula": "inverse_depth = png_value * scale + offset"}  # fmt: skip
            self._send(data, "image/png", headers)

        def _mjpeg(self) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.end_headers()
            with server._clients_lock:
                server.clients += 1
            try:
                for jpeg in server.latest[self._source].frames(server.stop):
                    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                    self.wfile.write(head.encode() + jpeg + b"\r\n")
                    self.wfile.flush()
            finally:
                with server._clients_lock:
                    server.clients -= 1

    return Handler
