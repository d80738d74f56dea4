"""The web viewer under load: inference FPS with no client and with several (one of them slow), and threads.

    python -m benchmarks serve ../shared/data/video/vtest.avi --clients 3 --seconds 10

``edgedepth.serve.DepthServer`` streams a looping real video. Inference FPS is the stream's frames per
second over each window: ``--seconds`` with no client, the same with ``--clients`` MJPEG clients (the first
reads one frame a second; the others as fast as frames come), then with no client again; the no-client
figure is the mean of the two windows around the clients. The thread count is sampled before, during and
after the clients.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgedepth import DepthEstimator
from edgedepth.fileio import atomic_write_bytes
from edgedepth.serve import BOUNDARY, DepthServer


@dataclass
class Client:
    """An MJPEG reader in its own thread, counting the frames it got; ``slow_s`` sleeps after each."""

    url: str
    slow_s: float = 0.0
    frames: int = 0
    error: str = ""

    def run(self, stop: threading.Event) -> None:
        marker = f"--{BOUNDARY}".encode()
        try:
            with urllib.request.urlopen(self.url + "stream.mjpg", timeout=10) as r:
                buf = b""
                while not stop.is_set():
                    buf += r.read1(65536)
                    parts = buf.count(marker)
                    if parts > 1:  # a part is complete once the next one starts
                        self.frames += parts - 1
                        buf = buf[buf.rindex(marker) :]
                        if self.slow_s:
                            stop.wait(self.slow_s)
        except OSError as exc:
            self.error = str(exc)


def frames_over(server: DepthServer, seconds: float) -> float:
    """Inference FPS over the next ``seconds``."""
    n0, t0 = server.stream.stats.frames, time.perf_counter()
    time.sleep(seconds)
    return (server.stream.stats.frames - n0) / (time.perf_counter() - t0)


def measure(
    est: DepthEstimator, source: Any, seconds: float = 10.0, clients: int = 3, warmup: float = 2.0
) -> dict[str, Any]:
    with DepthServer(est, source, port=0) as server:
        time.sleep(warmup)
        threads_before = threading.active_count()
        alone = frames_over(server, seconds)
        stop = threading.Event()
        readers = [Client(server.url, slow_s=1.0 if i == 0 else 0.0) for i in range(clients)]
        workers = [threading.Thread(target=c.run, args=(stop,), daemon=True) for c in readers]
        for w in workers:
            w.start()
        time.sleep(0.5)
        watched = frames_over(server, seconds)
        clients_seen = server.clients
        threads_during = threading.active_count()
        stop.set()
        for w in workers:
            w.join(timeout=5)
        deadline = time.monotonic() + 5
        while server.clients and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        threads_after = threading.active_count()
        alone_after = frames_over(server, seconds)
    return {
        "fps_no_client": (alone + alone_after) / 2,
        "fps_no_client_before_after": [alone, alone_after],
        "fps_with_clients": watched,
        "ratio": 2 * watched / (alone + alone_after) if alone + alone_after else 0.0,
        "clients": clients,
        "clients_seen_by_server": clients_seen,
        "frames_per_client": [c.frames for c in readers],
        "client_errors": [c.error for c in readers if c.error],
        "threads": {"before": threads_before, "during": threads_during, "after": threads_after},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks serve", description=__doc__.split("\n")[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with DepthEstimator(backend=args.backend) as est:
        r = measure(est, str(args.video), args.seconds, args.clients)
        backend = est.backend_name
    t = r["threads"]
    print(f"backend {backend}: inference {r['fps_no_client']:.1f} FPS with no client "
          f"({r['fps_no_client_before_after'][0]:.1f} before, {r['fps_no_client_before_after'][1]:.1f} after), "
          f"{r['fps_with_clients']:.1f} FPS with {r['clients']} clients ({r['ratio']:.0%}); frames per client "
          f"{r['frames_per_client']} (the first reads one a second); threads {t['before']} before, "
          f"{t['during']} during, {t['after']} after")  # fmt: skip
    if args.json:
        atomic_write_bytes(args.json, json.dumps(r, indent=1).encode())
    return 0
