"""Training datasets: RGB-D folders in every depth format, unlabelled images and video, corrupt files."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgedepth.errors import DataError
from edgedepth_train.data.rgbd import RGBDFolder
from edgedepth_train.data.unlabelled import UnlabelledImages

H, W = 12, 16


def _image(value: int = 0) -> np.ndarray:
    rng = np.random.default_rng(value)
    return rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)


def _depth_m() -> np.ndarray:
    depth = np.linspace(0.5, 6.0, H * W, dtype=np.float32).reshape(H, W)  # not symmetric: catches flips
    depth[0, :3] = 0.0
    return depth


def _write_frame(folder: Path, depth_m: np.ndarray, fmt: str, value: int = 0) -> None:
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / "rgb.png"), _image(value))
    meta: dict[str, object] = {"fx": 10.0}
    if fmt == "mm":
        cv2.imwrite(str(folder / "depth_mm.png"), np.rint(depth_m * 1000).astype(np.uint16))
    elif fmt == "png_scale":
        meta["depth_scale_m"] = 0.0002
        cv2.imwrite(str(folder / "depth.png"), np.rint(depth_m / 0.0002).astype(np.uint16))
    elif fmt == "npy":
        np.save(folder / "depth.npy", depth_m)
    elif fmt == "pfm":
        with open(folder / "depth.pfm", "wb") as fh:
            fh.write(f"Pf\n{W} {H}\n-1.0\n".encode())
            fh.write(np.ascontiguousarray(depth_m[::-1], dtype="<f4").tobytes())  # rows bottom to top
    (folder / "meta.json").write_text(json.dumps(meta))


def test_real_rgbd_frames(rgbd_dir: Path) -> None:
    ds = RGBDFolder(rgbd_dir)
    assert len(ds) == 9
    for i in (0, len(ds) - 1):
        s = ds[i]
        assert s["source"] == "rgbd"
        assert s["bgr"].shape == (480, 640, 3) and s["bgr"].dtype == np.uint8
        assert s["depth_m"].shape == (480, 640) and s["depth_m"].dtype == np.float32
        valid = s["depth_m"] > 0
        assert 0.5 < valid.mean() < 0.9
        assert s["depth_m"][valid].min() > 0.1 and s["depth_m"].max() < 20.0
    assert ds.skipped == 0


@pytest.mark.parametrize(("fmt", "tol"), [("mm", 6e-4), ("png_scale", 1.5e-4), ("npy", 0.0), ("pfm", 0.0)])
def test_depth_formats_round_trip(tmp_path: Path, fmt: str, tol: float) -> None:
    depth = _depth_m()
    _write_frame(tmp_path / "f0", depth, fmt)
    s = RGBDFolder(tmp_path)[0]
    np.testing.assert_array_equal(s["bgr"], _image(0))
    assert s["depth_m"].dtype == np.float32
    np.testing.assert_allclose(s["depth_m"], depth, atol=tol, rtol=0)
    assert (s["depth_m"][0, :3] == 0).all()


def test_missing_folder_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_rgbd"
    with pytest.raises(DataError, match="no_such_rgbd"):
        RGBDFolder(missing)
    with pytest.raises(DataError, match="no_such_images"):
        UnlabelledImages(images=tmp_path / "no_such_images")
    with pytest.raises(DataError, match="no_such_videos"):
        UnlabelledImages(videos=tmp_path / "no_such_videos")


def test_corrupt_image_is_skipped_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for i in range(3):
        _write_frame(tmp_path / f"f{i}", _depth_m(), "npy", value=i)
    (tmp_path / "f1" / "rgb.png").write_bytes(b"\x89PNG not really an image" * 10)
    ds = RGBDFolder(tmp_path)
    assert len(ds) == 3
    with caplog.at_level(logging.WARNING):
        samples = [ds[i] for i in range(3)]
        again = ds[1]
    np.testing.assert_array_equal(samples[1]["bgr"], _image(2))  # the next readable frame stands in
    np.testing.assert_array_equal(again["bgr"], _image(2))
    assert ds.skipped == 2
    assert ds.bad_paths == [str(tmp_path / "f1")]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "f1" in r.getMessage()]
    assert len(warnings) == 1  # once per bad file, however often it is hit


def test_all_corrupt_raises(tmp_path: Path) -> None:
    _write_frame(tmp_path / "f0", _depth_m(), "npy")
    (tmp_path / "f0" / "rgb.png").write_bytes(b"garbage")
    with pytest.raises(DataError):
        RGBDFolder(tmp_path)[0]


def _write_video(path: Path, n_frames: int) -> None:
    """Frame k is a flat grey of level 10 * k, so a decoded frame tells which one it is."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    assert writer.isOpened()
    for k in range(n_frames):
        writer.write(np.full((48, 64, 3), 10 * k, dtype=np.uint8))
    writer.release()


def test_unlabelled_images_and_video(tmp_path: Path) -> None:
    images = tmp_path / "images"
    (images / "nested").mkdir(parents=True)
    cv2.imwrite(str(images / "a.png"), _image(1))
    cv2.imwrite(str(images / "b.jpg"), _image(2))
    cv2.imwrite(str(images / "nested" / "c.bmp"), _image(3))
    (images / "notes.txt").write_text("not an image")
    (images / "nested" / "broken.png").write_bytes(b"garbage")
    video = tmp_path / "clip.avi"
    _write_video(video, 23)

    ds = UnlabelledImages(images=images, videos=video, frame_step=5)
    assert len(ds) == 4 + 5  # 4 image files (one corrupt) + frames 0, 5, 10, 15, 20
    samples = [ds[i] for i in range(len(ds))]
    assert all(s["depth_m"] is None and s["source"] == "unlabelled" for s in samples)
    assert all(s["bgr"].dtype == np.uint8 and s["bgr"].shape[2] == 3 for s in samples)
    assert ds.skipped == 1
    assert ds.bad_paths == [str(images / "nested" / "broken.png")]
    levels = [float(s["bgr"].mean()) for s in samples[4:]]
    np.testing.assert_allclose(levels, [0, 50, 100, 150, 200], atol=3)
    # Random access (seeking backwards and far ahead) returns the same frames as in-order access.
    for i in (8, 4, 6, 5):
        assert abs(float(ds[i]["bgr"].mean()) - levels[i - 4]) < 3


def test_unlabelled_video_limits(tmp_path: Path) -> None:
    _write_video(tmp_path / "v.avi", 12)
    assert len(UnlabelledImages(videos=tmp_path, frame_step=1)) == 12
    assert len(UnlabelledImages(videos=tmp_path, frame_step=4)) == 3
    assert len(UnlabelledImages(videos=tmp_path, frame_step=1, max_frames_per_video=5)) == 5
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    ds = UnlabelledImages(videos=tmp_path, frame_step=4)
    assert len(ds) == 3 and ds.bad_paths == [str(tmp_path / "junk.mp4")]


def test_real_images_folder(images_dir: Path) -> None:
    ds = UnlabelledImages(images=images_dir)
    assert len(ds) == 33
    assert ds[0]["bgr"].ndim == 3
