"""Flicker of video depth with and without the stream stabiliser, and the time the stabiliser adds.

    python -m benchmarks flicker ../shared/data/video/box.mp4 ../shared/data/video/cup.mp4 ../shared/data/video/vtest.avi
    python -m benchmarks flicker ... --frame-size 192x256   # the stabiliser's time at 256x192

Per video, every frame is predicted once (the model input's long side 256 by default); the same predictions
then go through ``edgedepth.stabilize.Stabilizer`` or not. Flicker is the mean absolute frame-to-frame change
on pixels whose image did not change (grey level within 12), relative to each map's mean absolute deviation:
- ``as shown``: the maps as they are, what a fixed colour range shows;
- ``normalised``: each map first brought to median 0 and mean absolute deviation 1, which removes any
  per-frame scale and shift and leaves the pixel-level flicker.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgedepth import DepthEstimator
from edgedepth.capture import read_video_frames
from edgedepth.fileio import atomic_write_bytes
from edgedepth.preprocess import parse_hw
from edgedepth.stabilize import Stabilizer, flicker, static_masks


def normalised(x: np.ndarray) -> np.ndarray:
    median = float(np.median(x))
    return (x - median) / (float(np.mean(np.abs(x - median))) or 1.0)


def measure(
    est: DepthEstimator, video: Path, max_frames: int | None = None, frame_hw: tuple[int, int] | None = None
) -> dict[str, Any]:
    frames = read_video_frames(video, max_frames, frame_hw)  # frame_hw: a camera of that resolution
    raw: list[Any] = [est.predict(frame) for frame in frames]
    stabilizer, stable, times = Stabilizer(), [], []
    for frame, result in zip(frames, raw, strict=True):
        t0 = time.perf_counter()
        stable.append(stabilizer(frame, result).inverse_depth)
        times.append((time.perf_counter() - t0) * 1e3)
    h, w = raw[0].inverse_depth.shape
    static = static_masks(frames, (h, w))
    maps = [r.inverse_depth for r in raw]
    return {
        "video": video.name,
        "frames": len(frames),
        "map_hw": [h, w],
        "static_fraction": float(np.mean([m.mean() for m in static[1:]])),
        "flicker_as_shown": {"raw": flicker(maps, static), "stabilised": flicker(stable, static)},
        "flicker_normalised": {
            "raw": flicker([normalised(m) for m in maps], static),
            "stabilised": flicker([normalised(m) for m in stable], static),
        },
        "stabiliser_ms_median": statistics.median(times[1:]) if len(times) > 1 else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks flicker", description=__doc__.split("\n")[0])
    parser.add_argument("videos", nargs="+", type=Path)
    parser.add_argument("--model", help="an .onnx model (default: the embedded one)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--long-side", type=int, default=256)
    parser.add_argument("--max-frames", type=int, help="at most this many frames per video")
    parser.add_argument(
        "--frame-size", help="resize frames to HxW first (e.g. 192x256), as a camera of that size"
    )
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    args = parser.parse_args(argv)
    with DepthEstimator(args.model, backend=args.backend, long_side=args.long_side) as est:
        frame_hw = parse_hw(args.frame_size, "--frame-size") if args.frame_size else None
        rows = [measure(est, v, args.max_frames, frame_hw) for v in args.videos]
    print("| video | frames | map | static pixels | flicker as shown: raw -> stabilised | normalised: raw -> "
          "stabilised | stabiliser ms |")  # fmt: skip
    print("|---|--:|---|--:|--:|--:|--:|")
    for r in rows:
        a, n = r["flicker_as_shown"], r["flicker_normalised"]
        print(f"| {r['video']} | {r['frames']} | {r['map_hw'][1]}x{r['map_hw'][0]} | {r['static_fraction']:.0%} | "
              f"{a['raw']:.4f} -> {a['stabilised']:.4f} ({a['raw'] / max(a['stabilised'], 1e-12):.1f}x) | "
              f"{n['raw']:.4f} -> {n['stabilised']:.4f} | {r['stabiliser_ms_median']:.2f} |")  # fmt: skip
    if args.json:
        atomic_write_bytes(args.json, json.dumps(rows, indent=1).encode())
    return 0
