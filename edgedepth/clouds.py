"""Metric point clouds from the command line: the options, the scale they ask for, and writing a cloud.

``edgedepth predict --ply`` and ``edgedepth stream --ply-every N`` take the camera's intrinsics and a metric
scale: sparse points (``--metric-points``) or the camera's height above the floor (``--camera-height``,
with ``--pitch`` when the model's output has an offset).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .errors import InputError


def add_cloud_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("metric point clouds (binary PLY)")
    g.add_argument(
        "--intrinsics", help="camera calibration: OpenCV YAML (camera_matrix, image_width/height) or JSON"
    )
    g.add_argument("--metric-points", help="CSV of u, v, depth_m rows (LiDAR, ToF, tags): the metric scale")
    g.add_argument("--camera-height", type=float, help="camera height above the floor in metres: the scale")
    g.add_argument(
        "--pitch", type=float, help="camera pitch down in degrees (with --camera-height: scale and shift)"
    )
    g.add_argument("--max-depth", type=float, help="leave out points farther than this (metres)")


def read_points(path: str) -> Any:
    """An (N, 3) array of u, v, depth in metres from a CSV file: exactly three columns a row, a first row
    taken as a header only when it is not three numbers. Read through ``textinput`` (a regular file, a size
    cap); a row of another width or a value that is not a finite number is refused naming its line."""
    import csv
    import math

    import numpy as np

    from .textinput import read_text_input

    what = "--metric-points"
    rows = [(n, row) for n, row in enumerate(csv.reader(read_text_input(path, what).splitlines()), 1) if row]

    def numbers(row: list[str]) -> list[float] | None:
        try:
            values = [float(v) for v in row]
        except ValueError:
            return None
        return values if all(math.isfinite(v) for v in values) else None

    def is_number(text: str) -> bool:
        try:
            float(text)
        except ValueError:
            return False
        return True

    if rows and len(rows[0][1]) == 3 and not any(is_number(v) for v in rows[0][1]):
        rows = rows[1:]  # a header such as "u,v,depth_m"
    points = []
    for line, row in rows:
        values = numbers(row)
        if len(row) != 3 or values is None:
            raise InputError(
                f"{what} {path}, line {line}: expected u, v, depth_m (three numbers), got {row!r:.80}"
            )
        points.append(values)
    return np.array(points, dtype=np.float64).reshape(-1, 3)


def metric_fit(args: argparse.Namespace, result: Any) -> Any:
    """The scale the options ask for: --metric-points, or --camera-height (with --pitch)."""
    from .intrinsics import Intrinsics
    from .metric import fit_camera_height, fit_points

    if args.metric_points:
        return fit_points(result.inverse_depth, read_points(args.metric_points))
    h, w = result.inverse_depth.shape
    return fit_camera_height(result.inverse_depth, Intrinsics.load(args.intrinsics).scaled_to(w, h),
                             args.camera_height, pitch_deg=args.pitch)  # fmt: skip


def check_cloud_options(args: argparse.Namespace, wanted: bool) -> None:
    if not wanted:
        return
    if not args.intrinsics:
        raise InputError("point clouds need --intrinsics (an OpenCV calibration YAML or a JSON file)")
    if (args.metric_points is None) == (args.camera_height is None):
        raise InputError("point clouds need a scale: give --metric-points pts.csv or --camera-height METRES")


def write_cloud(args: argparse.Namespace, result: Any, frame: Any, target: Path) -> None:
    from .intrinsics import Intrinsics
    from .pointcloud import write_ply

    h, w = result.inverse_depth.shape
    k = Intrinsics.load(args.intrinsics).scaled_to(w, h)
    points, colors = result.point_cloud(
        k, metric_fit(args, result), image_bgr=frame, max_depth=args.max_depth
    )
    write_ply(target, points, colors)
