"""End-to-end stream FPS against model-only FPS, in one process.

    python -m benchmarks.stream_fps ../shared/data/video/vtest.avi --backend openvino

Model-only: the backend alone on the video's preprocessed first frame (warm-up, then medians). Stream:
``DepthEstimator.stream`` over the whole file (decode, preprocess, inference, postprocess, in threads).
The two alternate ``--rounds`` times so drift in the machine's speed affects both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np

from edgedepth import DepthEstimator


def model_only_fps(est: DepthEstimator, frame: np.ndarray, runs: int, warmup: int) -> float:
    """Frames/s of the backend alone (median latency over ``runs`` after ``warmup``)."""
    _, x, _ = est.prepare(frame)
    for _ in range(warmup):
        est._backend.infer(x)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        est._backend.infer(x)
        times.append(time.perf_counter() - t0)
    return 1.0 / statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("video")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args(argv)
    ok, first = cv2.VideoCapture(args.video).read()
    if not ok:
        raise SystemExit(f"cannot read {args.video}")
    model_fps, stream_fps = [], []
    with DepthEstimator(backend=args.backend, precision=args.precision, threads=args.threads) as est:
        h, w = est.input_hw(first.shape[:2])
        print(
            f"{est.spec.name} ({args.precision}) on {est.backend_name}, {first.shape[1]}x{first.shape[0]} -> {w}x{h}"
        )
        for r in range(args.rounds):
            model_fps.append(model_only_fps(est, first, args.runs, warmup=20))
            with est.stream(args.video) as frames:
                n = sum(1 for _ in frames)
                stats = frames.stats
            stream_fps.append(stats.fps)
            print(f"round {r}: model-only {model_fps[-1]:.1f} FPS, stream {stats.fps:.1f} FPS over {n} frames, "
                  f"dropped {stats.dropped}, median latency {stats.latency_ms_median:.0f} ms")  # fmt: skip
    m, s = statistics.median(model_fps), statistics.median(stream_fps)
    print(f"median: model-only {m:.1f} FPS, stream {s:.1f} FPS, stream/model-only {s / m:.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
