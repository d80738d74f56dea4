"""Soak: a stream that runs for minutes, with the process's RSS, threads and open files sampled every second.

    python -m benchmarks soak --minutes 10                       # the embedded model on the demo clip, looped
    python -m benchmarks soak --minutes 60 --video clip.mp4 --backend openvino --out soak-results

Writes ``soak.json`` (every sample and a summary) and ``soak.png`` (with matplotlib) into ``--out`` and
prints the summary. A leak shows as RSS, threads or file descriptors that keep growing after the first
minute; the summary compares the first and the last minute.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from edgedepth import DepthEstimator
from edgedepth.capture import VideoSource
from edgedepth.embedded import DEMO_CLIP
from edgedepth.fileio import atomic_write_bytes

from .memory import rss_mb
from .report import machine_info


def open_files() -> int:
    """This process's open file descriptors (Linux), or -1 where /proc is missing."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def soak(est: DepthEstimator, video: Path, seconds: float, every_s: float = 1.0) -> dict[str, Any]:
    samples: list[dict[str, float]] = []
    frames = [0]
    stop = threading.Event()
    t0 = time.monotonic()

    def sample() -> None:
        while not stop.wait(every_s):
            samples.append({"t_s": time.monotonic() - t0, "rss_mb": rss_mb(), "threads": threading.active_count(),
                            "open_files": open_files(), "frames": frames[0]})  # fmt: skip

    sampler = threading.Thread(target=sample, name="soak-sampler", daemon=True)
    sampler.start()
    with est.stream(VideoSource(str(video), loop=True)) as stream:
        for _ in stream:
            frames[0] += 1
            if time.monotonic() - t0 >= seconds:
                break
        stats = stream.stats
    stop.set()
    sampler.join()
    first = [s for s in samples if s["t_s"] <= 60.0] or samples[:1]
    last = [s for s in samples if s["t_s"] >= samples[-1]["t_s"] - 60.0] or samples[-1:]

    def median(rows: list[dict[str, float]], key: str) -> float:
        return float(statistics.median(r[key] for r in rows))

    summary = {
        "seconds": samples[-1]["t_s"] if samples else 0.0,
        "frames": frames[0],
        "fps": stats.fps,
        "dropped": stats.dropped,
        "rss_mb_first_minute": median(first, "rss_mb"),
        "rss_mb_last_minute": median(last, "rss_mb"),
        "rss_mb_max": max(s["rss_mb"] for s in samples),
        "threads_first_minute": median(first, "threads"),
        "threads_last_minute": median(last, "threads"),
        "open_files_first_minute": median(first, "open_files"),
        "open_files_last_minute": median(last, "open_files"),
    }
    summary["rss_growth_mb"] = summary["rss_mb_last_minute"] - summary["rss_mb_first_minute"]
    return {"summary": summary, "samples": samples}


def plot(samples: list[dict[str, float]]) -> bytes | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    import io

    fig, axes = plt.subplots(3, 1, figsize=(7, 6), sharex=True)
    t = [s["t_s"] / 60 for s in samples]
    for ax, key, label in zip(
        axes, ("rss_mb", "threads", "open_files"), ("RSS (MiB)", "threads", "open files"), strict=True
    ):
        ax.plot(t, [s[key] for s in samples])
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("minutes")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks soak", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--model", help="an .onnx model (default: the embedded one)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--video", type=Path, default=DEMO_CLIP)
    parser.add_argument("--out", type=Path, default=Path("soak-results"))
    args = parser.parse_args(argv)
    if not args.minutes > 0:
        parser.error("--minutes must be positive")
    with DepthEstimator(args.model, backend=args.backend, threads=args.threads) as est:
        result = soak(est, args.video, args.minutes * 60.0)
        result["backend"] = est.backend_name
    result["machine"] = machine_info()
    result["command"] = "python -m benchmarks soak " + " ".join(argv or [])
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / "soak.json", json.dumps(result, indent=1).encode())
    image = plot(result["samples"])
    if image is not None:
        atomic_write_bytes(args.out / "soak.png", image)
    s = result["summary"]
    print(f"soak {s['seconds'] / 60:.1f} min, {s['frames']} frames ({s['fps']:.1f} FPS, dropped {s['dropped']}) "
          f"on {result['backend']}: RSS {s['rss_mb_first_minute']:.1f} -> {s['rss_mb_last_minute']:.1f} MiB "
          f"(first -> last minute, max {s['rss_mb_max']:.1f}), threads {s['threads_first_minute']:.0f} -> "
          f"{s['threads_last_minute']:.0f}, open files {s['open_files_first_minute']:.0f} -> "
          f"{s['open_files_last_minute']:.0f}; {args.out / 'soak.json'}")  # fmt: skip
    return 0
