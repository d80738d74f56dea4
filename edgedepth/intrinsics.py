"""Pinhole intrinsics: from an OpenCV calibration file (YAML or JSON), or a field of view; scaled to an image.

    k = Intrinsics.load("cam.yaml")            # camera_matrix / K, image_width / image_height
    k = Intrinsics.from_fov(70, 640, 480)      # horizontal field of view in degrees
    k = k.scaled_to(320, 240)                  # the same camera at another resolution

Intrinsics alone do not give metric depth from a relative (affine-invariant) prediction: a scale needs
something measured in metres (points, or the camera's height above a floor; see ``edgedepth.metric``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import InputError

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
            if not (isinstance(value, int | float | np.number) and math.isfinite(value)):
                raise InputError(f"intrinsics {name}={value!r} must be a finite number")
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
        """From an OpenCV calibration file (``camera_matrix`` or ``K``, ``image_width``, ``image_height``, as
        written by OpenCV's calibration samples and ROS camera_info YAML) or a JSON file with fx, fy, cx, cy,
        width and height. A file that does not parse, or lacks a key, raises InputError naming both."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"calibration file {path} does not exist")
        if path.suffix.lower() == ".json":
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise InputError(f"calibration file {path}: not valid JSON ({exc})") from None
            return cls._from_mapping(data, path)
        return cls._from_opencv(path)

    @classmethod
    def _from_mapping(cls, data: Any, path: Path) -> Intrinsics:
        if not isinstance(data, dict):
            raise InputError(f"calibration file {path}: expected an object of fx, fy, cx, cy, width, height")
        if "K" in data or "camera_matrix" in data:
            k = np.asarray(data.get("K", data.get("camera_matrix")), dtype=np.float64).reshape(-1)
            if k.size != 9:
                raise InputError(f"calibration file {path}: K must hold 9 numbers")
            data = {**data, "fx": k[0], "fy": k[4], "cx": k[2], "cy": k[5]}
        keys = ("fx", "fy", "cx", "cy", "width", "height")
        missing = [k for k in keys if k not in data]
        if missing:
            raise InputError(f"calibration file {path}: missing key(s) {', '.join(missing)}")
        try:
            fx, fy, cx, cy = (float(data[k]) for k in keys[:4])
            return cls(fx, fy, cx, cy, int(data["width"]), int(data["height"]))
        except (TypeError, ValueError) as exc:
            raise InputError(f"calibration file {path}: {exc}") from None

    @classmethod
    def _from_opencv(cls, path: Path) -> Intrinsics:
        try:
            fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ | cv2.FILE_STORAGE_FORMAT_AUTO)
        except cv2.error as exc:
            raise InputError(
                f"calibration file {path}: OpenCV cannot parse it ({str(exc).strip()[-120:]})"
            ) from None
        try:
            if not fs.isOpened():
                raise InputError(f"calibration file {path}: OpenCV cannot open it")
            k = next((fs.getNode(n).mat() for n in ("camera_matrix", "K") if not fs.getNode(n).empty()), None)
            if k is None:
                raise InputError(f"calibration file {path}: missing key camera_matrix (or K)")
            sizes = {n: fs.getNode(n) for n in ("image_width", "image_height")}
            missing = [n for n, node in sizes.items() if node.empty()]
            if missing:
                raise InputError(f"calibration file {path}: missing key(s) {', '.join(missing)}")
            k = np.asarray(k, dtype=np.float64).reshape(-1)
            return cls(
                k[0], k[4], k[2], k[5], int(sizes["image_width"].real()), int(sizes["image_height"].real())
            )
        finally:
            fs.release()

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
