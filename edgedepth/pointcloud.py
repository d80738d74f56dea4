"""Point clouds from depth and intrinsics, and binary PLY files (Open3D, CloudCompare, MeshLab and trimesh
read them).

    depth = fit.depth(result.inverse_depth)                     # metres (edgedepth.metric)
    points, colors = point_cloud(depth, k, image_bgr=frame, confidence=result.confidence, min_confidence=0.5)
    write_ply("cloud.ply", points, colors)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import InputError
from .fileio import atomic_open
from .intrinsics import Intrinsics

PLY_MAGIC = b"ply\n"


def point_cloud(
    depth_m: np.ndarray,
    intrinsics: Intrinsics,
    stride: int = 1,
    max_depth: float | None = None,
    confidence: np.ndarray | None = None,
    min_confidence: float = 0.0,
    image_bgr: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, 3) float32 points X, Y, Z (x right, y down, z forward, metres) and, with ``image_bgr``, (N, 3)
    uint8 RGB colours. Every ``stride``-th pixel; pixels with NaN, non-positive or (``max_depth``) far depth,
    or a confidence under ``min_confidence``, are dropped. Intrinsics of another size with the same aspect
    are scaled to the map."""
    z = np.asarray(depth_m, dtype=np.float32)
    if z.ndim != 2 or z.size == 0:
        raise InputError(f"point_cloud: depth_m must be a 2-D map, got shape {z.shape}")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise InputError(f"point_cloud: stride={stride!r} must be an int >= 1")
    h, w = z.shape
    k = intrinsics.scaled_to(w, h)
    keep = np.isfinite(z) & (z > 0)
    if max_depth is not None:
        keep &= z <= max_depth
    if confidence is not None:
        if np.shape(confidence) != z.shape:
            raise InputError(
                f"point_cloud: confidence {np.shape(confidence)} and depth {z.shape} differ in size"
            )
        keep &= np.asarray(confidence) >= min_confidence
    keep = keep[::stride, ::stride]
    rows, cols = np.nonzero(keep)
    zv = z[::stride, ::stride][rows, cols]
    u, v = cols * stride, rows * stride
    points = np.stack([(u - k.cx) * zv / k.fx, (v - k.cy) * zv / k.fy, zv], axis=1).astype(np.float32)
    if image_bgr is None:
        return points, None
    if np.shape(image_bgr)[:2] != z.shape:
        raise InputError(f"point_cloud: image {np.shape(image_bgr)[:2]} and depth {z.shape} differ in size")
    colors = np.asarray(image_bgr, dtype=np.uint8)[v, u][:, ::-1].copy()  # BGR -> RGB
    return points, colors


def write_ply(path: str | os.PathLike[str], points: np.ndarray, colors: np.ndarray | None = None) -> Path:
    """A binary little-endian PLY of float32 x, y, z and, when given, uint8 red, green, blue; atomic."""
    pts = np.asarray(points, dtype="<f4")
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise InputError(f"write_ply: points must be (N, 3), got shape {pts.shape}")
    header = ["ply", "format binary_little_endian 1.0", "comment edgedepth", f"element vertex {len(pts)}",
              "property float x", "property float y", "property float z"]  # fmt: skip
    if colors is not None:
        cols = np.asarray(colors)
        if cols.shape != pts.shape or cols.dtype != np.uint8:
            raise InputError(
                f"write_ply: colors must be (N, 3) uint8 like the points, got {cols.dtype} {cols.shape}"
            )
        header += ["property uchar red", "property uchar green", "property uchar blue"]
        vertex = np.empty(len(pts), dtype=[("p", "<f4", 3), ("c", "u1", 3)])
        vertex["p"], vertex["c"] = pts, cols
        body = vertex.tobytes()
    else:
        body = pts.tobytes()
    path = Path(path)
    with atomic_open(path) as f:
        f.write(("\n".join([*header, "end_header"]) + "\n").encode("ascii"))
        f.write(body)
    return path


def read_ply(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """Points and colours of a PLY that :func:`write_ply` wrote."""
    data = Path(path).read_bytes()
    end = data.find(b"end_header\n")
    if not data.startswith(PLY_MAGIC) or end < 0:
        raise InputError(f"{path}: not a PLY file")
    header = data[:end].decode("ascii").splitlines()
    count = next(int(line.split()[2]) for line in header if line.startswith("element vertex"))
    has_color = any(line.endswith(" red") for line in header)
    dtype = np.dtype([("p", "<f4", 3), ("c", "u1", 3)] if has_color else [("p", "<f4", 3)])
    body = data[end + len(b"end_header\n") :]
    if len(body) != count * dtype.itemsize:
        raise InputError(f"{path}: {len(body)} bytes for {count} vertices; the file is truncated")
    vertex = np.frombuffer(body, dtype=dtype, count=count)
    return vertex["p"].copy(), (vertex["c"].copy() if has_color else None)
