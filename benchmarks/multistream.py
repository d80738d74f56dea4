"""Several cameras through one model: total and per-source FPS against one stream, batched or round-robin.

    python -m benchmarks multistream ../shared/data/video/vtest.avi --copies 2 4 --backends onnxruntime,openvino

For each backend, ``DepthEstimator.stream([...])`` runs over 1 (the reference: one stream), 2 and 4 copies
of a real video, as file sources (every frame, as fast as the model goes) and as synthetic live sources
(the video's frames, decoded once, handed out at ``--live-fps`` like a camera, with drops when the model is
slower), with the ready frames of a tick run as one batch or one by one (round-robin). Each run is timed
for ``--seconds`` after ``--warmup`` seconds; FPS counts frames delivered to the caller.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgedepth import DepthEstimator
from edgedepth.capture import VideoSource, read_video_frames
from edgedepth.fileio import atomic_write_bytes


class PacedCapture:
    """A camera stand-in: the given frames in a loop at ``fps`` (read() blocks until the next is due)."""

    def __init__(self, frames: list[np.ndarray], fps: float) -> None:
        self.frames, self.period, self.i = frames, 1.0 / fps, 0
        self.next_s = time.monotonic()

    def read(self) -> tuple[bool, Any]:
        delay = self.next_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self.next_s = max(self.next_s + self.period, time.monotonic() - self.period)
        frame = self.frames[self.i % len(self.frames)]
        self.i += 1
        return True, frame

    def isOpened(self) -> bool:
        return True

    def release(self) -> None:
        pass


def run(
    est: DepthEstimator, sources: list[Any], batch: bool, seconds: float, warmup: float
) -> dict[str, Any]:
    counts = [0] * len(sources)
    with est.stream(sources, batch=batch, loop=True) as stream:
        t0 = time.perf_counter()
        start = end = None
        for item in stream:
            now = time.perf_counter()
            if start is None and now - t0 >= warmup:
                start, counts = now, [0] * len(sources)
            if start is not None:
                counts[item.index] += 1
                if now - start >= seconds:
                    end = now
                    break
        stats = stream.stats
    elapsed = (end or time.perf_counter()) - (start or t0)
    per_source = [c / elapsed for c in counts]
    return {
        "total_fps": sum(counts) / elapsed,
        "per_source_fps": per_source,
        "mean_batch": stats.mean_batch,
        "dropped": sum(s.dropped for s in stats.sources),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks multistream", description=__doc__.split("\n")[0]
    )
    parser.add_argument("video", type=Path)
    parser.add_argument("--copies", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--backends", default="onnxruntime,openvino")
    parser.add_argument("--threads", type=int, help="inference threads (default: the backend's)")
    parser.add_argument("--live-fps", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    frames = read_video_frames(args.video, 120)
    rows = []
    for backend in args.backends.split(","):
        with DepthEstimator(backend=backend, threads=args.threads) as est:
            for kind in ("file", "live"):

                def make(n: int, kind: str = kind) -> list[Any]:
                    if kind == "file":
                        return [str(args.video)] * n
                    return [VideoSource.from_capture(PacedCapture(frames, args.live_fps), uri=f"live{i}")
                            for i in range(n)]  # fmt: skip

                one = run(est, make(1), True, args.seconds, args.warmup)
                rows.append({"backend": backend, "kind": kind, "copies": 1, "mode": "one stream", **one})
                for n in args.copies:
                    for batch in (True, False):
                        r = run(est, make(n), batch, args.seconds, args.warmup)
                        mode = "batched" if batch else "round-robin"
                        rows.append({"backend": backend, "kind": kind, "copies": n, "mode": mode, **r})
    print(
        "| backend | sources | copies | mode | total FPS | per-source FPS | x one stream | frames per call |"
    )
    print("|---|---|--:|---|--:|--:|--:|--:|")
    for r in rows:
        base = next(b for b in rows if (b["backend"], b["kind"], b["copies"]) == (r["backend"], r["kind"], 1))
        per = r["per_source_fps"]
        print(f"| {r['backend']} | {r['kind']} | {r['copies']} | {r['mode']} | {r['total_fps']:.1f} | "
              f"{min(per):.1f}-{max(per):.1f} | {r['total_fps'] / base['total_fps']:.2f} | {r['mean_batch']:.2f} |")  # fmt: skip
    if args.json:
        atomic_write_bytes(args.json, json.dumps(rows, indent=1).encode())
    return 0
