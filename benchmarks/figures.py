"""The README's demo frame, regenerated from a model: a frame of the embedded clip beside its depth.

    python -m benchmarks figures                      # the embedded model -> benchmarks/figures/demo_frame.jpg
    python -m benchmarks figures --model my.onnx --out /tmp/figures

The frame is the clip's middle one (60 of 120), predicted once with ``DepthEstimator.predict`` and coloured
with the default colour map (near is warm).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from edgedepth import DepthEstimator
from edgedepth.embedded import DEMO_CLIP
from edgedepth.errors import InputError
from edgedepth.fileio import atomic_write_bytes
from edgedepth.postprocess import side_by_side

FIGURES = Path(__file__).resolve().parent / "figures"


def demo_frame(est: DepthEstimator, index: int = 60) -> cv2.typing.MatLike:
    capture = cv2.VideoCapture(str(DEMO_CLIP))
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise InputError(f"--frame {index}: the embedded clip has no such frame")
    return side_by_side(frame, est.predict(frame).colorize())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks figures", description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="an .onnx model (default: the embedded one)")
    parser.add_argument("--frame", type=int, default=60, help="which frame of the embedded clip")
    parser.add_argument("--out", type=Path, default=FIGURES)
    args = parser.parse_args(argv)
    with DepthEstimator(args.model, backend="onnxruntime") as est:
        image = demo_frame(est, args.frame)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise InputError("could not encode the demo frame as JPEG")
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "demo_frame.jpg"
    atomic_write_bytes(target, buf.tobytes())
    print(f"wrote {target}")
    return 0
