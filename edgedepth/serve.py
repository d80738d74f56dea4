"""A live web viewer for headless robots: ``edgedepth serve SOURCE``.

Built on the standard library's ``http.server`` (a ``ThreadingHTTPServer``, one thread per client): no
dependency to install on a robot, and MJPEG over HTTP needs nothing more. One page shows the camera and its
colourised depth side by side (``/stream.mjpg``, ``multipart/x-mixed-replace``) and polls ``/stats``
(JSON: FPS, latency p50, drops, backend, model). ``/snapshot`` returns the newest inverse depth as a 16-bit
PNG, its scale and offset in the ``X-Depth-Scale`` and ``X-Depth-Offset`` headers (and inside the PNG).

The stream runs in its own thread and publishes each result to :class:`Latest`. A client never slows it:
each waits for a frame newer than the one it last sent, so a slow client skips frames rather than queueing
them, and each frame is JPEG-encoded at most once, lazily, however many clients watch (``view_fps`` caps
how often). Closing wakes every client; their threads end within a second.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from .errors import InputError, choices
from .imageio import encode_png16
from .output.http_guard import (
    HEADER_TIMEOUT_S,
    MAX_CLIENTS,
    SECURITY_HEADERS,
    GuardedHTTPServer,
    HeaderDeadline,
    host_allowed,
)
from .postprocess import COLORMAPS, ValueRange, side_by_side

if TYPE_CHECKING:
    from .estimator import DepthEstimator
    from .result import DepthResult
    from .stream import Stream

BOUNDARY = "edgedepth-frame"
WAIT_S = 0.5  # how often a waiting client looks at the stop flag

PAGE = """<!doctype html>
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
<span id="stats">waiting for the first frame...</span><a href="/snapshot">16-bit snapshot</a></header>
<img id="view" src="/stream.mjpg" alt="camera and depth, side by side">
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


class DepthServer:
    """Serve ``estimator.stream(source)`` to browsers; ``start()`` returns at once, ``close()`` stops it.

    ``port=0`` picks a free port (see ``url``). File sources loop. A port in use raises InputError naming it.
    Requests are answered only for Host values that are IP literals, ``localhost`` or in ``allow_hosts``
    (see ``edgedepth.output.http_guard``); ``max_clients`` connections at most, each with
    ``header_timeout_s`` to send its request header.
    """

    def __init__(
        self,
        estimator: DepthEstimator,
        source: Any,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        cmap: str = "turbo",
        view_fps: float = 15.0,
        allow_hosts: Sequence[str] = (),
        max_clients: int = MAX_CLIENTS,
        header_timeout_s: float = HEADER_TIMEOUT_S,
        **stream_options: Any,
    ) -> None:
        if not 0 <= port <= 65535:
            raise InputError(f"--port {port}: give a TCP port between 1 and 65535 (0 picks a free one)")
        check_view_options(cmap, view_fps)
        self.allow_hosts = frozenset(h.lower() for h in allow_hosts)
        self.estimator, self.source = estimator, source
        self.latest = Latest(cmap=cmap, view_fps=view_fps)
        self.stop = threading.Event()
        self.clients = 0
        self._clients_lock = threading.Lock()
        self.error: BaseException | None = None
        try:
            self.httpd = GuardedHTTPServer((host, port), _handler_for(self), max_clients, header_timeout_s)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise InputError(f"port {port} on {host} is in use; choose another with --port") from None
            raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        stream_options.setdefault("loop", True)
        try:
            self.stream: Stream = estimator.stream(source, **stream_options)
        except BaseException:
            self.httpd.server_close()
            raise
        self._threads = [
            threading.Thread(target=self._publish_loop, name="edgedepth-serve-infer", daemon=True),
            threading.Thread(
                target=self.httpd.serve_forever, args=(0.2,), name="edgedepth-serve-http", daemon=True
            ),
        ]

    @property
    def url(self) -> str:
        host, port = str(self.httpd.server_address[0]), self.httpd.server_address[1]
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def start(self) -> DepthServer:
        for t in self._threads:
            t.start()
        return self

    def _publish_loop(self) -> None:
        try:
            for item in self.stream:
                self.latest.publish(item.frame, item.result)
                if self.stop.is_set():
                    break
        except BaseException as exc:  # the page shows it; run() re-raises it
            self.error = exc

    def stats(self) -> dict[str, Any]:
        s = self.stream.stats
        return {
            "fps": s.fps,
            "model_fps": 1e3 / s.infer_ms_median if s.infer_ms_median > 0 else 0.0,
            "latency_ms_p50": s.latency_ms_median if np.isfinite(s.latency_ms_median) else 0.0,
            "infer_ms_p50": s.infer_ms_median if np.isfinite(s.infer_ms_median) else 0.0,
            "frames": s.frames,
            "dropped": s.dropped,
            "source_state": s.source_state,
            "ended_by": s.ended_by,
            "error": str(self.error) if self.error else "",
            "backend": self.estimator.backend_name,
            "model": self.estimator.spec.name,
            "clients": self.clients,
        }

    def run(self) -> None:
        """Serve until Ctrl-C (or the stream fails); then close."""
        self.start()
        try:
            while not self.stop.is_set() and self._threads[0].is_alive():
                time.sleep(0.2)
        finally:
            self.close()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Stop serving and streaming; clients are woken and their threads end. Returns within about 2 s."""
        if self.stop.is_set():
            return
        self.stop.set()
        self.latest.close()
        self.stream.close()
        if self._threads[1].is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()
        for t in self._threads:
            if t.is_alive() and t is not threading.current_thread():
                t.join(timeout=1.0)

    def __enter__(self) -> DepthServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _handler_for(server: DepthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"
        default_request_version = "HTTP/1.0"  # every answer has a status line, even to a malformed request
        server_version = "edgedepth"
        sys_version = ""  # the Server header names no Python version
        timeout = 10.0  # a client that stops reading for this long is dropped, and its thread ends

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
            path = self.path.split("?", 1)[0]
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
            self._send(PAGE.encode(), "text/html; charset=utf-8")

        def _stats(self) -> None:
            self._send(json.dumps(server.stats()).encode(), "application/json")

        def _snapshot(self) -> None:
            item = server.latest.newer_than(0, timeout_s=2.0)
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
                for jpeg in server.latest.frames(server.stop):
                    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                    self.wfile.write(head.encode() + jpeg + b"\r\n")
                    self.wfile.flush()
            finally:
                with server._clients_lock:
                    server.clients -= 1

    return Handler
