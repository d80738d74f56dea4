"""Unlabelled real images and video frames (no depth), e.g. for distillation from a teacher.

Images are found recursively; videos are sampled every ``frame_step``-th frame. Frames are indexed once at
construction by *decoding* each video (``CAP_PROP_FRAME_COUNT`` is only the container's claim: one of the
project's sample videos announces 444 frames and decodes 68), and stored as ``(video, frame)`` pairs.
Unreadable files are skipped and counted by :class:`SkippingDataset`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2

from edgedepth.capture.kinds import capture  # opens quietly: FFmpeg's decoder warnings off
from edgedepth.errors import DataError

from .rgbd import Sample, SkippingDataset

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})
FORWARD_READ_LIMIT = 32  # read forward instead of seeking when the wanted frame is at most this far ahead

PathArg = str | Path | Iterable[str | Path]


def _as_paths(arg: PathArg | None) -> list[Path]:
    if arg is None:
        return []
    if isinstance(arg, str | Path):
        return [Path(arg)]
    return [Path(p) for p in arg]


def find_files(roots: list[Path], suffixes: frozenset[str], kind: str) -> list[Path]:
    """Files under each root (recursive, sorted) whose suffix is in ``suffixes``; a root may be a file.

    A root that does not exist raises DataError naming it.
    """
    found: list[Path] = []
    for root in roots:
        if root.is_file():
            found.append(root)
        elif root.is_dir():
            found.extend(sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes))
        else:
            raise DataError(f"{kind} folder {root} does not exist")
    return found


def count_frames(video: Path) -> int:
    """The number of frames that actually decode (grabbing each one); 0 when the file cannot be opened."""
    cap = capture(str(video), cv2.CAP_ANY)
    try:
        if not cap.isOpened():
            return 0
        n = 0
        while cap.grab():
            n += 1
        return n
    finally:
        cap.release()


class UnlabelledImages(SkippingDataset):
    """Images (recursive; jpg/png/bmp/webp) and/or every ``frame_step``-th frame of videos, without depth.

    ``images`` and ``videos`` each take a folder, a file or a list of them. Items are raw sample dicts
    ``{"bgr": uint8 HxWx3, "depth_m": None, "source": "unlabelled"}``. A missing folder, or no images or
    frames at all, raises DataError. Videos are read by seeking (``CAP_PROP_POS_FRAMES``, checked exact on
    the project's sample videos) or, when the wanted frame is a little ahead of the last one read, by reading
    forward, so in-order access decodes each video once.
    """

    source = "unlabelled"

    def __init__(
        self,
        images: PathArg | None = None,
        videos: PathArg | None = None,
        frame_step: int = 10,
        max_frames_per_video: int | None = None,
    ) -> None:
        super().__init__()
        if images is None and videos is None:
            raise DataError("UnlabelledImages needs an images folder, video files, or both")
        if frame_step < 1:
            raise DataError(f"frame_step must be >= 1, got {frame_step}")
        self.frame_step = frame_step
        self.items: list[tuple[Path, int | None]] = []  # (image, None) or (video, frame index)
        image_roots, video_roots = _as_paths(images), _as_paths(videos)
        self.items.extend((p, None) for p in find_files(image_roots, IMAGE_SUFFIXES, "image"))
        for video in find_files(video_roots, VIDEO_SUFFIXES, "video"):
            n = count_frames(video)
            if n == 0:
                self.bad_paths.append(str(video))
                log.warning("skipping video %s: it cannot be opened or holds no decodable frame", video)
                continue
            frames = range(0, n, frame_step)
            if max_frames_per_video is not None:
                frames = frames[:max_frames_per_video]
            self.items.extend((video, k) for k in frames)
        if not self.items:
            where = ", ".join(str(p) for p in image_roots + video_roots)
            raise DataError(f"no images or video frames found in {where}")
        self._cap: tuple[int, Path, Any, int] | None = None  # (pid, video, capture, next frame index)

    def __len__(self) -> int:
        return len(self.items)

    def close(self) -> None:
        """Release the open video capture. Call it before forking workers: a process forked while FFmpeg's
        decoder threads run inherits their locks, and its first VideoCapture then hangs."""
        if self._cap is not None and self._cap[0] == os.getpid():
            self._cap[2].release()
        self._cap = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cap"] = None  # an open VideoCapture cannot be pickled (DataLoader workers with spawn)
        return state

    def _describe(self, index: int) -> str:
        path, frame = self.items[index]
        return str(path) if frame is None else f"{path}#frame={frame}"

    def _load(self, index: int) -> Sample:
        path, frame = self.items[index]
        if frame is None:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise DataError(f"{path}: not a readable image")
        else:
            bgr = self._read_frame(path, frame)
        return {"bgr": bgr, "depth_m": None, "source": self.source}

    def _read_frame(self, video: Path, frame: int) -> Any:
        pid = os.getpid()
        if self._cap is not None and (self._cap[0] != pid or self._cap[1] != video):
            if self._cap[0] == pid:
                self._cap[2].release()
            self._cap = None  # a capture inherited through fork is never touched
        if self._cap is None:
            cap = capture(str(video), cv2.CAP_ANY)
            if not cap.isOpened():
                raise DataError(f"{video}: cannot be opened")
            self._cap = (pid, video, cap, 0)
        _, _, cap, pos = self._cap
        if not pos <= frame <= pos + FORWARD_READ_LIMIT:
            cap.set(cv2.CAP_PROP_POS_FRAMES, frame)
            pos = frame
        ok = True
        while ok and pos < frame:
            ok = cap.grab()
            pos += 1
        ok, bgr = cap.read() if ok else (False, None)
        if not ok or bgr is None:
            cap.release()
            self._cap = None
            raise DataError(f"{video}: frame {frame} could not be read")
        self._cap = (pid, video, cap, frame + 1)
        return bgr
