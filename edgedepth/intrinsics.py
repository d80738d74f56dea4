"""Pinhole intrinsics: from an OpenCV calibration file (YAML or JSON), or a field of view; scaled to an image.

    k = Intrinsics.load("cam.yaml")            # camera_matrix / K, image_width / image_height
    k = Intrinsics.from_fov(70, 640, 480)      # horizontal field of view in degrees
    k = k.scaled_to(320, 240)                  # the same camera at another resolution

Intrinsics alone do not give metric depth from a relative (affine-invariant) prediction: a scale needs
something measured in metres (points, or the camera's height above a floor; see ``edgedepth.metric``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .textinput import finite_number

ASPECT_TOLERANCE = 0.01


@dataclass(frozen=True)
class Intrinsics:
    """Focal lengths and principal point in pixels, for an image of ``width`` x ``height``."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        for name in ("fx", "fy", "cx", "cy"):
            value = getattr(self, name)
            if not (isinstance(value, int | float | np.number) and finite_number(value)):
                raise InputError(f"intrinsics {name}={str(value)[:40]} must be a finite number")
            object.__setattr__(self, name, float(value))
        if self.fx <= 0 or self.fy <= 0:
            raise InputError(f"intrinsics fx={self.fx}, fy={self.fy} must be positive")
        if (
            not (isinstance(self.width, int) and isinstance(self.height, int))
            or min(self.width, self.height) < 1
        ):
            raise InputError(
                f"intrinsics width={self.width!r}, height={self.height!r} must be positive integers"
            )

    @classmethod
    def from_fov(cls, horizontal_fov_deg: float, width: int, height: int) -> Intrinsics:
        """Square pixels and a centred principal point; ``horizontal_fov_deg`` in (0, 180)."""
        if not 0 < horizontal_fov_deg < 180:
            raise InputError(f"horizontal_fov_deg={horizontal_fov_deg} must be between 0 and 180 degrees")
        f = width / 2 / math.tan(math.radians(horizontal_fov_deg) / 2)
        return cls(f, f, (width - 1) / 2, (height - 1) / 2, width, height)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Intrinsics:
        """From a calibration file: OpenCV's YAML (``camera_matrix``, ``image_width``, ``image_height``), a
        ROS ``camera_info`` YAML (``camera_matrix: {rows, cols, data}`` or ``K``), or JSON with fx, fy, cx,
        cy, width and height (or ``K`` and the sizes). Read through ``textinput``: a file that does not
        parse, or lacks or mistypes a key, raises InputError naming both."""
        from .textinput import load_json_input, load_yaml_input

        what = "calibration file"
        load = load_json_input if Path(path).suffix.lower() == ".json" else load_yaml_input
        return cls._from_mapping(load(path, what), Path(path))

    @classmethod
    def _from_mapping(cls, data: Any, path: Path) -> Intrinsics:
        where = f"calibration file {path}"
        if not isinstance(data, dict):
            raise InputError(
                f"{where}: expected a mapping of camera_matrix (or K, or fx, fy, cx, cy) and sizes"
            )
        matrix = next((data[k] for k in ("camera_matrix", "K", "k") if k in data), None)
        if matrix is not None:
            k = _numbers(
                matrix.get("data") if isinstance(matrix, dict) else matrix, f"{where}: camera_matrix"
            )
            if k.size != 9:
                raise InputError(f"{where}: camera_matrix must hold 9 numbers (3 x 3), got {k.size}")
            data = {**data, "fx": k[0], "fy": k[4], "cx": k[2], "cy": k[5]}
        width = next((data[k] for k in ("width", "image_width") if k in data), None)
        height = next((data[k] for k in ("height", "image_height") if k in data), None)
        missing = (
            []
            if all(k in data for k in ("fx", "fy", "cx", "cy"))
            else ["camera_matrix (or K, or fx, fy, cx, cy)"]
        )
        missing += [k for k, v in (("image_width", width), ("image_height", height)) if v is None]
        if missing:
            raise InputError(f"{where}: missing key(s) {', '.join(missing)}")
        fx, fy, cx, cy = (_number(data[k], f"{where}: {k}") for k in ("fx", "fy", "cx", "cy"))
        return cls(
            fx, fy, cx, cy, _whole(width, f"{where}: image_width"), _whole(height, f"{where}: image_height")
        )

    def scaled_to(self, width: int, height: int) -> Intrinsics:
        """The same camera at ``width`` x ``height``: scaled when the aspect ratio matches, else InputError."""
        if (width, height) == (self.width, self.height):
            return self
        sx, sy = width / self.width, height / self.height
        if abs(sx / sy - 1) > ASPECT_TOLERANCE:
            raise InputError(
                f"intrinsics for {self.width}x{self.height} do not fit a {width}x{height} image (another aspect "
                "ratio: a crop, not a resize); calibrate at this size or crop the image to the calibrated aspect"
            )
        # Pixel centres: x' + 0.5 = (x + 0.5) * s.
        return Intrinsics(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5,
                          width, height)  # fmt: skip

    def rays(self, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Normalised image coordinates ``x = (u - cx) / fx``, ``y = (v - cy) / fy`` of every stride-th pixel."""
        u = np.arange(0, self.width, stride, dtype=np.float64)
        v = np.arange(0, self.height, stride, dtype=np.float64)
        return np.meshgrid((u - self.cx) / self.fx, (v - self.cy) / self.fy)


def _number(value: Any, name: str) -> float:
    """A finite real number from parsed JSON/YAML (not a bool, not a string)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not finite_number(value):
        raise InputError(f"{name}={str(value)[:40]} must be a finite number")
    return float(value)


def _whole(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name}={value!r} must be a positive whole number")
    return value


def _numbers(value: Any, name: str) -> np.ndarray:
    """The numbers of a flat or nested list (a 3 x 3 matrix written either way)."""
    if not isinstance(value, list):
        raise InputError(f"{name} must be a list of 9 numbers (or 3 rows of 3), got {value!r:.60}")
    flat = [x for row in value for x in (row if isinstance(row, list) else [row])]
    return np.array([_number(x, name) for x in flat], dtype=np.float64)
