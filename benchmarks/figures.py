"""The README's demo frame, regenerated from a model: a frame of the embedded clip beside its depth; and
a sheet that puts models side by side on the same photographs, to look at before one ships.

    python -m benchmarks figures                      # the embedded model -> benchmarks/figures/demo_frame.jpg
    python -m benchmarks figures --model my.onnx --out /tmp/figures
    python -m benchmarks figures --compare v2.onnx v3.onnx --images ../shared/data/images --out /tmp/look

The frame is the clip's middle one (60 of 120), predicted once with ``DepthEstimator.predict`` and coloured
with the default colour map (near is warm). The sheet (``compare.jpg``) has a row per image: the photo,
then each model's depth, each coloured by its own 2nd-98th percentiles.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from edgedepth import DepthEstimator
from edgedepth.capture.kinds import list_images
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


def image_paths(paths: list[Path]) -> list[Path]:
    """The files given, and the image files of the folders given (as a folder source lists them), in order."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += list_images(str(path))  # SourceError naming the folder when it holds none
        elif path.is_file():
            out.append(path)
        else:
            raise InputError(f"--images {path}: no such file or folder")
    if not out:
        raise InputError("--images: give at least one photo or folder")
    return out


def compare_sheet(models: list[Path], images: list[Path], width: int = 320) -> np.ndarray:
    """One row per image, ``width`` pixels a column: the photo, then each model's colourised depth; the
    models' file names head their columns."""
    estimators = [DepthEstimator(m, backend="onnxruntime") for m in models]
    try:
        rows = []
        for path in images:
            photo = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if photo is None:
                raise InputError(f"{path}: not a readable image")
            photo = cv2.resize(photo, (width, max(1, round(photo.shape[0] * width / photo.shape[1]))))
            rows.append(cv2.hconcat([photo, *(est.predict(photo).colorize() for est in estimators)]))
    finally:
        for est in estimators:
            est.close()
    header = np.full((28, width * (1 + len(models)), 3), 17, np.uint8)
    for i, name in enumerate(["photo", *(m.name for m in models)]):
        cv2.putText(
            header, name, (i * width + 8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (230, 230, 230), 1, cv2.LINE_AA
        )
    return cv2.vconcat([header, *rows])


def write_jpeg(image: np.ndarray, target: Path) -> None:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise InputError(f"could not encode {target.name} as JPEG")
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, buf.tobytes())
    print(f"wrote {target}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks figures", description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="an .onnx model (default: the embedded one)")
    parser.add_argument("--frame", type=int, default=60, help="which frame of the embedded clip")
    parser.add_argument("--out", type=Path, default=FIGURES)
    parser.add_argument("--compare", nargs="+", type=Path, metavar="MODEL", help="models for compare.jpg")
    parser.add_argument("--images", nargs="+", type=Path, default=[], help="photos or folders for --compare")
    args = parser.parse_args(argv)
    if args.compare:
        write_jpeg(compare_sheet(args.compare, image_paths(args.images)), args.out / "compare.jpg")
        return 0
    with DepthEstimator(args.model, backend="onnxruntime") as est:
        write_jpeg(demo_frame(est, args.frame), args.out / "demo_frame.jpg")
    return 0
