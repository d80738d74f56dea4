"""Reading RGB-D folders: one frame per sub-folder with ``rgb.png``, a depth file and ``meta.json``.

Depth may be a 16-bit PNG with a scale factor (``depth_mm.png`` means millimetres), a ``.npy`` array or a
``.pfm`` file, all in metres once read. 0 (or non-finite) means no measurement. Shared by training's
evaluation, the quantizer's accuracy gate and the benchmarks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .capture.kinds import RGB_NAMES, frame_folders, rgb_file
from .errors import DataError

__all__ = ["RGB_NAMES", "RGBDFrame", "frame_folders", "iter_rgbd", "list_rgbd_frames", "read_depth", "read_pfm",
           "read_rgbd_frame", "rgb_file"]  # fmt: skip

DEPTH_CANDIDATES = ("depth_mm.png", "depth.png", "depth.npy", "depth.pfm")


@dataclass(frozen=True)
class RGBDFrame:
    name: str
    bgr: np.ndarray  # H x W x 3 uint8
    depth_m: np.ndarray  # H x W float32, 0 = invalid
    meta: dict[str, Any] = field(default_factory=dict)


def read_pfm(path: Path) -> np.ndarray:
    """Read a single-channel PFM file (the format used by Middlebury and many depth datasets)."""
    with open(path, "rb") as fh:
        header = fh.readline().strip()
        if header not in (b"Pf", b"PF"):
            raise DataError(f"{path}: not a PFM file (header {header!r})")
        dims = fh.readline().split()
        width, height = int(dims[0]), int(dims[1])
        scale = float(fh.readline().strip())
        dtype = "<f4" if scale < 0 else ">f4"
        channels = 3 if header == b"PF" else 1
        data = np.fromfile(fh, dtype=dtype, count=width * height * channels)
    if data.size != width * height * channels:
        raise DataError(f"{path}: truncated PFM ({data.size} of {width * height * channels} values)")
    data = data.reshape(height, width, channels)[::-1, :, 0]  # PFM rows run bottom to top
    return np.ascontiguousarray(data, dtype=np.float32)


def read_depth(path: str | Path, scale_m: float | None = None) -> np.ndarray:
    """Read a depth file into metres. 16-bit PNGs need ``scale_m`` (metres per unit) unless named *_mm.png."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"depth file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        depth = np.load(path, allow_pickle=False).astype(np.float32)
    elif suffix == ".pfm":
        depth = read_pfm(path)
    elif suffix == ".png":
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None or raw.dtype != np.uint16 or raw.ndim != 2:
            raise DataError(f"{path}: expected a single-channel 16-bit PNG")
        if scale_m is None:
            if path.stem.endswith("_mm"):
                scale_m = 1e-3
            else:
                raise DataError(f"{path}: a 16-bit depth PNG needs a scale (set depth_scale_m in meta.json)")
        depth = raw.astype(np.float32) * np.float32(scale_m)
    else:
        raise DataError(f"{path}: unsupported depth format {suffix!r}; use .png (16-bit), .npy or .pfm")
    if depth.ndim != 2:
        raise DataError(f"{path}: depth must be 2-D, got shape {depth.shape}")
    depth[~np.isfinite(depth)] = 0.0
    return depth


def read_rgbd_frame(folder: str | Path) -> RGBDFrame:
    """Read one frame folder: ``rgb.png`` (or .jpg), a depth file and an optional ``meta.json``."""
    folder = Path(folder)
    meta: dict[str, Any] = {}
    if (folder / "meta.json").is_file():
        try:
            meta = json.loads((folder / "meta.json").read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{folder / 'meta.json'}: invalid JSON ({exc})") from None
    rgb_path = rgb_file(folder)
    if rgb_path is None:
        raise DataError(f"{folder}: no rgb.png or rgb.jpg")
    bgr = cv2.imread(str(rgb_path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataError(f"{rgb_path}: not a readable image")
    depth_name = meta.get("depth_file") or next((n for n in DEPTH_CANDIDATES if (folder / n).is_file()), None)
    if depth_name is None:
        raise DataError(f"{folder}: no depth file; expected one of {', '.join(DEPTH_CANDIDATES)}")
    depth = read_depth(folder / depth_name, meta.get("depth_scale_m"))
    if depth.shape != bgr.shape[:2]:
        raise DataError(f"{folder}: depth {depth.shape} and rgb {bgr.shape[:2]} differ in size")
    return RGBDFrame(name=folder.name, bgr=bgr, depth_m=depth, meta=meta)


def list_rgbd_frames(root: str | Path) -> list[Path]:
    """The frame folders under ``root`` in sorted order; a missing or empty root raises DataError."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"RGB-D folder {root} does not exist")
    frames = frame_folders(root)
    if not frames:
        raise DataError(f"RGB-D folder {root} holds no frame folders (each needs rgb.png and a depth file)")
    return frames


def iter_rgbd(root: str | Path) -> Iterator[RGBDFrame]:
    for folder in list_rgbd_frames(root):
        yield read_rgbd_frame(folder)
