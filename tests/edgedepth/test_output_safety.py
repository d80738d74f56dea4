"""Outputs never destroy: only a regular file (or a symlink to one) is replaced, an existing file only when
asked, and a write that fails (a full or read-only disk) is a typed error that leaves the old file whole."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgedepth.errors import OutputError
from edgedepth.fileio import atomic_write_bytes, check_destination
from edgedepth.postprocess import SideBySideWriter


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str = "96k") -> Iterator[Path]:
    """A tiny file system of its own (root only), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; the full-disk and read-only checks run as root in CI")
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_only_regular_files_are_replaced(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "to_folder").symlink_to(tmp_path / "folder")
    for name in ("folder", "fifo", "to_folder"):
        with pytest.raises(OutputError, match=f"cannot write {tmp_path / name}: it is"):
            atomic_write_bytes(tmp_path / name, b"x")
    assert (tmp_path / "folder").is_dir() and (tmp_path / "fifo").is_fifo()
    with pytest.raises(OutputError, match="not a regular file"):
        atomic_write_bytes("/dev/null", b"x")
    (tmp_path / "real.bin").write_bytes(b"old")
    (tmp_path / "link.bin").symlink_to(tmp_path / "real.bin")
    atomic_write_bytes(tmp_path / "link.bin", b"new")  # written through; the link stays a link
    assert (tmp_path / "link.bin").is_symlink() and (tmp_path / "real.bin").read_bytes() == b"new"
    with pytest.raises(OutputError, match="exists; pass --overwrite"):
        check_destination(tmp_path / "real.bin", overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "fifo",
        "folder",
        "link.bin",
        "real.bin",
        "to_folder",
    ]


def test_a_full_disk_is_a_typed_error_and_the_old_file_stays(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk") as disk:
        atomic_write_bytes(disk / "model.bin", b"good" * 1000)
        with pytest.raises(OutputError, match=f"cannot write {disk / 'model.bin'}.*No space left"):
            atomic_write_bytes(disk / "model.bin", bytes(400_000))
        assert (disk / "model.bin").read_bytes() == b"good" * 1000
        assert [p.name for p in disk.iterdir()] == ["model.bin"]  # no temp file left


def test_a_read_only_disk_is_a_typed_error(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk") as disk:
        atomic_write_bytes(disk / "a.bin", b"good")
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        with pytest.raises(OutputError, match="Read-only file system"):
            atomic_write_bytes(disk / "a.bin", b"new")
        assert (disk / "a.bin").read_bytes() == b"good"


def test_a_video_that_cannot_be_finished_keeps_the_good_one(tmp_path: Path) -> None:
    """FFmpeg only prints that it failed to write a frame: the writer checks the finished file before it
    replaces anything, so a full disk fails loudly and the existing video stays playable."""
    frame = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    with small_tmpfs(tmp_path / "disk", size="160k") as disk:
        with SideBySideWriter(disk / "clip.mp4", 10, (128, 96)) as writer:
            writer.write(frame, frame)
        good = (disk / "clip.mp4").read_bytes()
        with (
            pytest.raises(OutputError, match=r"clip\.mp4"),
            SideBySideWriter(disk / "clip.mp4", 10, (128, 96)) as w,
        ):
            for _ in range(200):
                w.write(np.random.default_rng(1).integers(0, 255, (96, 128, 3), dtype=np.uint8), frame)
        assert (disk / "clip.mp4").read_bytes() == good
        assert cv2.VideoCapture(str(disk / "clip.mp4")).read()[0]
        assert [p.name for p in disk.iterdir()] == ["clip.mp4"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    import sys

    return subprocess.run(
        [sys.executable, "-m", "edgedepth.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_commands_refuse_to_replace_outputs_before_they_start(tiny_onnx: Path, tmp_path: Path) -> None:
    """stream --save, --ply-dir and verify --json need --overwrite to replace a file, refuse what is not a
    file, and say so before any frame is processed; verify never writes over its model."""
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(6):
        writer.write(np.full((48, 64, 3), 30 * i, np.uint8))
    writer.release()
    saved = tmp_path / "out.mp4"
    saved.write_bytes(b"a good video")
    model = ["--model", str(tiny_onnx)]
    done = _cli("stream", str(clip), "--save", str(saved), *model)
    assert done.returncode == 2 and f"{saved} exists; pass --overwrite" in done.stderr, done.stderr
    assert saved.read_bytes() == b"a good video" and "frames" not in done.stdout  # nothing ran
    done = _cli("stream", str(clip), "--save", str(saved), "--overwrite", *model)
    assert done.returncode == 0, done.stderr
    assert cv2.VideoCapture(str(saved)).read()[0]
    (tmp_path / "dir.mp4").mkdir()
    done = _cli("stream", str(clip), "--save", str(tmp_path / "dir.mp4"), "--overwrite", *model)
    assert done.returncode == 2 and "it is a folder" in done.stderr
    assert not list(tmp_path.glob(".*partial*"))
    done = _cli("verify", str(tiny_onnx), "--frames", str(clip), "--json", str(tiny_onnx), "--overwrite")
    assert done.returncode == 2 and "is the model being verified" in done.stderr, done.stderr
    (tmp_path / "report.json").write_text("{}")
    done = _cli("verify", str(tiny_onnx), "--frames", str(clip), "--json", str(tmp_path / "report.json"))
    assert done.returncode == 2 and "report.json exists; pass --overwrite" in done.stderr
    clouds = tmp_path / "clouds"
    clouds.mkdir()
    (clouds / "cloud_000000.ply").write_bytes(b"ply")
    camera = tmp_path / "camera.json"
    camera.write_text('{"fx": 60, "fy": 60, "cx": 32, "cy": 24, "width": 64, "height": 48}')
    done = _cli("stream", str(clip), "--ply-every", "2", "--ply-dir", str(clouds), "--camera-height", "1.2",
                "--intrinsics", str(camera), *model)  # fmt: skip
    assert done.returncode == 2 and "pass --overwrite to replace them" in done.stderr, done.stderr
    assert (clouds / "cloud_000000.ply").read_bytes() == b"ply"
