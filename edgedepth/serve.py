"""A live web viewer for headless robots: ``edgedepth serve SOURCE``, the stream with a web output.

:class:`DepthServer` runs ``estimator.stream(source)`` (files loop) in its own thread and publishes every
result to a :class:`~edgedepth.output.web.WebOutput`, which serves the page, the MJPEG view, the
statistics and 16-bit snapshots (see there). ``edgedepth stream SRC... --out http://HOST:PORT`` is the same
from the command line, for one source or several.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from .output.web import BOUNDARY, Latest, WebOutput, check_view_options

if TYPE_CHECKING:
    from .estimator import DepthEstimator
    from .stream import Stream, StreamStats

WEB_OPTIONS = ("cmap", "view_fps", "allow_hosts", "max_clients", "header_timeout_s")  # the rest: the stream's
__all__ = ["BOUNDARY", "DepthServer", "Latest", "check_view_options", "stream_stats"]


def stream_stats(
    s: StreamStats, estimator: DepthEstimator, error: BaseException | None = None
) -> dict[str, Any]:
    """The viewer's ``/stats`` for a stream: FPS, model FPS, latency and inference p50, drops, state."""
    return {
        "fps": s.fps,
        "model_fps": 1e3 / s.infer_ms_median if s.infer_ms_median > 0 else 0.0,
        "latency_ms_p50": s.latency_ms_median if np.isfinite(s.latency_ms_median) else 0.0,
        "infer_ms_p50": s.infer_ms_median if np.isfinite(s.infer_ms_median) else 0.0,
        "frames": s.frames,
        "dropped": s.dropped,
        "source_state": s.source_state,
        "ended_by": s.ended_by,
        "error": str(error) if error else "",
        "backend": estimator.backend_name,
        "model": estimator.spec.name,
    }


class DepthServer:
    """Serve ``estimator.stream(source)`` to browsers; ``start()`` returns at once, ``close()`` stops it.

    ``source`` may be a list (one view each). ``host``, ``port`` and the options named in ``WEB_OPTIONS``
    (``cmap``, ``view_fps``, ``allow_hosts``, ``max_clients``, ``header_timeout_s``) go to the
    :class:`WebOutput`; the rest go to the stream, whose file sources loop.
    """

    def __init__(
        self,
        estimator: DepthEstimator,
        source: Any,
        host: str = "127.0.0.1",
        port: int = 8080,
        **options: Any,
    ) -> None:
        self.estimator, self.source = estimator, source
        self.error: BaseException | None = None
        sources = len(source) if isinstance(source, list | tuple) else 1
        web = {k: options.pop(k) for k in WEB_OPTIONS if k in options}
        self.web = WebOutput(host, port, sources=sources, stats=self._stream_stats, **web)
        self.httpd, self.stop = self.web.httpd, self.web.stop
        options.setdefault("loop", True)
        try:
            self.stream: Stream = estimator.stream(source, **options)
        except BaseException:
            self.web.close()
            raise
        self._thread = threading.Thread(target=self._publish_loop, name="edgedepth-serve-infer", daemon=True)

    @property
    def url(self) -> str:
        return self.web.url

    @property
    def clients(self) -> int:
        return self.web.clients

    @property
    def latest(self) -> Latest:
        """The first source's newest frame."""
        return self.web.latest[0]

    def start(self) -> DepthServer:
        self._thread.start()
        return self

    def _publish_loop(self) -> None:
        try:
            for item in self.stream:
                self.web.render(item.frame, item.result, item.index)
                if self.stop.is_set():
                    break
        except BaseException as exc:  # the page shows it; run() re-raises it
            self.error = exc

    def _stream_stats(self) -> dict[str, Any]:
        return stream_stats(self.stream.stats, self.estimator, self.error)

    def stats(self) -> dict[str, Any]:
        return self.web.stats()

    def run(self) -> None:
        """Serve until Ctrl-C (or the stream fails); then close."""
        self.start()
        try:
            while not self.stop.is_set() and self._thread.is_alive():
                time.sleep(0.2)
        finally:
            self.close()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Stop serving and streaming; clients are woken and their threads end. Returns within about 2 s."""
        self.web.close()
        self.stream.close()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)

    def __enter__(self) -> DepthServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
