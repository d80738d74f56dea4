"""End-to-end stream FPS against model-only FPS, in one process (the stream part of ``python -m benchmarks``).

    python -m benchmarks.stream_fps ../shared/data/video/vtest.avi --backend openvino

Model-only: the backend alone on the video's preprocessed first frame (warm-up, then medians). Stream:
``DepthEstimator.stream`` over the whole file (decode, preprocess, inference, postprocess, in threads).
The two alternate ``--rounds`` times so drift in the machine's speed affects both alike (``stream.py``).
"""

from __future__ import annotations

import argparse

from .stream import StreamPass, first_frame, measure_stream, open_estimator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("video")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--long-side", type=int, help="model input's longer side (default: the model's)")
    args = parser.parse_args(argv)

    def report(r: int, model_fps: float, p: StreamPass) -> None:
        print(f"round {r}: model-only {model_fps:.1f} FPS, stream {p.fps:.1f} FPS over {p.frames} frames, "
              f"dropped {p.dropped}, median latency {p.latency_ms_median:.0f} ms")  # fmt: skip

    with open_estimator(None, args.backend, args.precision, args.threads, args.long_side) as est:
        sh, sw = first_frame(args.video).shape[:2]
        h, w = est.input_hw((sh, sw))
        print(f"{est.spec.name} ({args.precision}) on {est.backend_name}, {sw}x{sh} -> {w}x{h}")
        result = measure_stream(est, args.video, args.rounds, args.runs, warmup=20, on_round=report)
    m, s = result["model_only_fps"], result["stream_fps"]
    print(f"median: model-only {m:.1f} FPS, stream {s:.1f} FPS, stream/model-only {s / m:.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
