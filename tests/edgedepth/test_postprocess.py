"""Outputs: colour maps, side-by-side frames, the video writer, depth from inverse depth, point clouds."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgedepth.errors import InputError, OutputError
from edgedepth.postprocess import (
    COLORMAPS,
    SideBySideWriter,
    colorize,
    depth_from_inverse,
    robust_range,
    side_by_side,
)


def _ramp(h: int = 8, w: int = 256) -> np.ndarray:
    return np.tile(np.linspace(0.0, 1.0, w, dtype=np.float32), (h, 1))


@pytest.mark.parametrize("cmap", sorted(COLORMAPS))
@pytest.mark.parametrize("invert", [False, True])
def test_colorize_shape_and_dtype(cmap: str, invert: bool) -> None:
    out = colorize(_ramp(12, 30), cmap=cmap, invert=invert)
    assert out.shape == (12, 30, 3) and out.dtype == np.uint8 and out.flags.c_contiguous


@pytest.mark.parametrize("cmap", sorted(COLORMAPS))
def test_invert_reverses_the_colour_order(cmap: str) -> None:
    ramp = _ramp()
    normal = colorize(ramp, cmap=cmap, value_range=(0.0, 1.0))
    inverted = colorize(ramp, cmap=cmap, invert=True, value_range=(0.0, 1.0))
    assert np.array_equal(inverted, normal[:, ::-1])
    assert not np.array_equal(normal[0, 0], normal[0, -1])
    robust = colorize(ramp, cmap=cmap)  # percentile normalisation is symmetric on a linear ramp
    robust_inv = colorize(ramp, cmap=cmap, invert=True)
    assert np.abs(robust_inv.astype(int) - robust[:, ::-1].astype(int)).max() <= 8


def test_gray_maps_near_to_white() -> None:
    out = colorize(_ramp(), cmap="GRAY", value_range=(0.0, 1.0))
    assert out[0, 0].tolist() == [0, 0, 0] and out[0, -1].tolist() == [255, 255, 255]
    assert out[0, 100].tolist() == [100, 100, 100]


def test_colorize_is_nan_safe_and_robust_to_outliers() -> None:
    ramp = _ramp()
    ramp[0, 0], ramp[0, 1], ramp[0, 2] = np.nan, np.inf, 1e9
    out = colorize(ramp)
    assert out[0, 0].tolist() == [0, 0, 0] and out[0, 1].tolist() == [0, 0, 0]
    lo, hi = robust_range(ramp)
    assert 0.0 < lo < 0.05 and 0.95 < hi < 1.0
    assert np.array_equal(colorize(np.full((8, 8), np.nan)), np.zeros((8, 8, 3), np.uint8))
    assert colorize(np.ones((8, 8), np.float32)).shape == (8, 8, 3)  # constant map
    assert colorize(_ramp()[None, None]).shape == (8, 256, 3)  # 1x1xHxW model output


def test_fixed_value_range_gives_stable_colours() -> None:
    frame_a = _ramp()
    frame_b = frame_a.copy()
    frame_b[:, :128] = 0.3  # different content changes the percentiles, not a fixed range
    a = colorize(frame_a, value_range=(0.0, 1.0))
    b = colorize(frame_b, value_range=(0.0, 1.0))
    assert np.array_equal(a[:, 128:], b[:, 128:])


def test_colorize_refusals() -> None:
    with pytest.raises(InputError, match="'turbo', 'inferno', 'magma', 'viridis', 'gray'"):
        colorize(_ramp(), cmap="jet")
    with pytest.raises(InputError, match="value_range"):
        colorize(_ramp(), value_range=(1.0, 0.0))
    with pytest.raises(InputError, match="HxW"):
        colorize(np.zeros((4, 4, 3)))


def test_side_by_side_resizes_depth_to_frame_height() -> None:
    frame = np.full((40, 60, 3), 200, np.uint8)
    depth = colorize(_ramp(20, 30))
    out = side_by_side(frame, depth)
    assert out.shape == (40, 120, 3) and out.dtype == np.uint8
    assert np.array_equal(out[:, :60], frame)
    assert side_by_side(frame, colorize(_ramp(40, 50))).shape == (40, 110, 3)


@pytest.mark.parametrize("ext", [".mp4", ".avi"])
def test_side_by_side_writer_round_trip(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"out{ext}"
    w, h, n = 64, 48, 7
    with SideBySideWriter(path, fps=10, frame_size=(w, h)) as writer:
        assert not path.exists()  # only the temp file exists while recording
        for i in range(n):
            frame = np.full((h, w, 3), 30 * i, np.uint8)
            writer.write(frame, colorize(_ramp(24, 32) * i, value_range=(0.0, 7.0)))
    assert writer.frames_written == n
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert len(frames) == n
    assert frames[0].shape == (h, 2 * w, 3)


def test_writer_refusals_and_aborted_recording(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"'\.mp4'"):
        SideBySideWriter(tmp_path / "x.mkv", 10, (32, 32))
    with pytest.raises(OutputError, match="missing"):
        SideBySideWriter(tmp_path / "missing" / "x.mp4", 10, (32, 32))
    with pytest.raises(InputError, match="fps"):
        SideBySideWriter(tmp_path / "x.mp4", 0, (32, 32))
    with (
        pytest.raises(InputError, match="frame_size"),
        SideBySideWriter(tmp_path / "x.mp4", 10, (32, 32)) as w,
    ):
        w.write(np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []  # the aborted recording left nothing behind
    with pytest.raises(InputError, match="frame_size"):
        SideBySideWriter(tmp_path / "x.mp4", 10, (32.5, 32))  # type: ignore[arg-type]
    writer = SideBySideWriter(tmp_path / "y.avi", 10.0, (32.0, 32.0))  # type: ignore[arg-type]  # as cap.get gives
    assert writer.frame_size == (32, 32)
    with pytest.raises(OutputError, match="no frame was written"):
        writer.close()
    assert not (tmp_path / "y.avi").exists()
    with pytest.raises(InputError, match="closed"):
        writer.write(np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32, 3), np.uint8))


def test_depth_from_inverse() -> None:
    inv = np.array([[2.0, 0.5, 0.0, -1.0, np.nan]], np.float32)
    depth = depth_from_inverse(inv)
    assert depth.dtype == np.float32
    assert depth[0, :2].tolist() == [0.5, 2.0] and np.isnan(depth[0, 2:]).all()
    assert depth_from_inverse(inv, scale=2.0, shift=1.0)[0, 0] == pytest.approx(0.2)
