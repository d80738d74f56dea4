"""What publishing ROS 2 topics costs a stream: frames per second with and without ``--ros2``'s publisher.

    python -m benchmarks ros2 ../shared/data/video/vtest.avi --frame-size 256x256 --rounds 3

The video's frames are decoded once (resized to ``--frame-size``, a camera of that size) and replayed from
memory, so decoding does not blur the comparison; each round streams them through one estimator, once
publishing every frame's messages (JPEG image, relative inverse depth, confidence; nobody subscribed, as on a
robot whose viewer is off) and once not, alternating which goes first. The medians over the rounds and
their ratio are printed. The DDS domain is ``ROS_DOMAIN_ID`` and Cyclone's configuration ``CYCLONEDDS_URI``
(the loopback interface with multicast off unless that is set).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgedepth import DepthEstimator
from edgedepth.capture import VideoSource, read_video_frames
from edgedepth.fileio import atomic_write_bytes
from edgedepth.preprocess import parse_hw

LOOPBACK = (
    '<CycloneDDS><Domain id="any"><General><Interfaces><NetworkInterface name="lo"/></Interfaces>'
    "<AllowMulticast>false</AllowMulticast></General></Domain></CycloneDDS>"
)


class Replay:
    """A capture-like object over frames in memory (for ``VideoSource.from_capture``): every frame, then the end."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        self.frames, self.i = frames, 0

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.i >= len(self.frames):
            return False, None
        self.i += 1
        return True, self.frames[self.i - 1]

    def isOpened(self) -> bool:
        return True

    def get(self, prop: int) -> float:
        return float(len(self.frames)) if prop == cv2.CAP_PROP_FRAME_COUNT else 0.0

    def release(self) -> None:
        pass


def stream_fps(est: DepthEstimator, frames: list[np.ndarray], publisher: Any) -> float:
    """Frames per second of one pass of ``frames`` through ``est.stream``, publishing each when asked."""
    source = VideoSource.from_capture(Replay(frames), live=False)
    t0 = time.perf_counter()
    count = 0
    with est.stream(source, stabilize=True) as stream:
        for item in stream:
            if publisher is not None:
                publisher.render(item.frame, item.result, 0, item.captured_at)
            count += 1
    return count / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks ros2", description=__doc__.split("\n")[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--model", help="an .onnx model (default: the embedded one)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--frame-size", default="256x256", help="resize frames to HxW (default 256x256)")
    parser.add_argument("--max-frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    args = parser.parse_args(argv)
    os.environ.setdefault("CYCLONEDDS_URI", LOOPBACK)
    from edgedepth.output.dds import Ros2Publisher

    frame_hw = parse_hw(args.frame_size, "--frame-size")
    frames = read_video_frames(args.video, args.max_frames, frame_hw)
    fps: dict[str, list[float]] = {"plain": [], "ros2": []}
    with DepthEstimator(args.model, backend=args.backend) as est:
        publisher = Ros2Publisher()
        stream_fps(est, frames[:30], publisher)  # warm-up: the model, and the DDS writers made
        for r in range(args.rounds):
            for mode in ("plain", "ros2") if r % 2 == 0 else ("ros2", "plain"):
                fps[mode].append(stream_fps(est, frames, publisher if mode == "ros2" else None))
        publisher.close()
        backend = est.backend_name
    plain, ros2 = statistics.median(fps["plain"]), statistics.median(fps["ros2"])
    result = {"video": args.video.name, "frames": len(frames), "frame_hw": list(frame_hw), "backend": backend,
              "rounds": args.rounds, "fps": fps, "median_fps": {"plain": plain, "ros2": ros2},
              "ros2_over_plain": ros2 / plain}  # fmt: skip
    print(
        f"{args.video.name}: {len(frames)} frames at {frame_hw[1]}x{frame_hw[0]}, {backend}, {args.rounds} rounds"
    )
    print(
        f"  stream without publishing: {plain:.1f} FPS (rounds: {', '.join(f'{v:.1f}' for v in fps['plain'])})"
    )
    print(
        f"  stream publishing --ros2:  {ros2:.1f} FPS (rounds: {', '.join(f'{v:.1f}' for v in fps['ros2'])})"
    )
    print(f"  ratio {ros2 / plain:.3f} ({(1 - ros2 / plain) * 100:+.1f}% slower)")
    if args.json:
        atomic_write_bytes(args.json, json.dumps(result, indent=1).encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
