"""Metric point clouds from the command line: the options, the scale they ask for, and writing a cloud.

``edgedepth predict --ply`` and ``edgedepth stream --ply-every N`` take the camera's intrinsics and a metric
scale: sparse points (``--metric-points``) or the camera's height above the floor (``--camera-height``,
with ``--pitch`` when the model's output has an offset).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
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


@dataclass(frozen=True)
class CloudSettings:
    """The point-cloud options, their files read and checked before any work starts."""

    intrinsics: Any  # Intrinsics
    points: Any | None  # (N, 3) u, v, depth_m from --metric-points, or None
    camera_height: float | None
    pitch: float | None
    max_depth: float | None

    def fit(self, result: Any) -> Any:
        """The metric scale for one result (a MetricFit): from the points, or from the camera height."""
        from .metric import fit_camera_height, fit_points

        if self.points is not None:
            return fit_points(result.inverse_depth, self.points)
        h, w = result.inverse_depth.shape
        # check_cloud_options asks for a scale; a settings object made by hand may have none
        if self.camera_height is None:
            raise InputError("point clouds need a scale: metric points or a camera height")
        return fit_camera_height(
            result.inverse_depth, self.intrinsics.scaled_to(w, h), self.camera_height, pitch_deg=self.pitch
        )


def check_cloud_options(args: argparse.Namespace, wanted: bool) -> CloudSettings | None:
    """Read and check the point-cloud options (both files parse) before a model loads; None if not wanted."""
    from .intrinsics import Intrinsics

    if not wanted:
        return None
    if not args.intrinsics:
        raise InputError("point clouds need --intrinsics (an OpenCV calibration YAML or a JSON file)")
    if (args.metric_points is None) == (args.camera_height is None):
        raise InputError("point clouds need a scale: give --metric-points pts.csv or --camera-height METRES")
    points = read_points(args.metric_points) if args.metric_points else None
    return CloudSettings(
        Intrinsics.load(args.intrinsics), points, args.camera_height, args.pitch, args.max_depth
    )


def describe_fit(fit: Any) -> str:
    """One line on how good a metric fit is: scale, shift, inliers and median error, and a warning when the
    fit puts part of the image at or beyond infinity."""
    error = (
        f"median relative error {fit.error:.3f}"
        if fit.method == "points"
        else f"floor residual {fit.error:.3g}"
    )
    line = f"metric fit ({fit.method}): scale {fit.scale:.4g}, shift {fit.shift:.4g}, inliers {fit.inliers}/{fit.total}, {error}"
    if fit.beyond > 0:
        line += (
            f"; WARNING: {fit.beyond:.1%} of the pixels fall at or beyond infinity and are left out of the "
            "cloud: the scale does not hold for the far scene (give --metric-points, or a larger --long-side)"
        )
    return line


def write_cloud(settings: CloudSettings, result: Any, frame: Any, target: Path) -> Any:
    """The PLY and a JSON sidecar with its metric fit (``NAME.json``); returns the fit (a MetricFit)."""
    import dataclasses
    import json

    from .fileio import atomic_write_bytes
    from .pointcloud import write_ply

    h, w = result.inverse_depth.shape
    fit = settings.fit(result)
    points, colors = result.point_cloud(
        settings.intrinsics.scaled_to(w, h), fit, image_bgr=frame, max_depth=settings.max_depth
    )
    write_ply(target, points, colors)
    sidecar = target.with_suffix(".json")
    info = {"metric_fit": dataclasses.asdict(fit), "points": len(points), "ply": target.name}
    atomic_write_bytes(sidecar, json.dumps(info, indent=1).encode())
    return fit
