"""RGB-D training data, and the skip-and-count mechanism every training dataset shares.

``SkippingDataset`` is the one place where unreadable samples are handled: a sample that fails to decode is
replaced by the next readable one, counted and logged, so that one corrupt file never stops a training run.
``RGBDFolder`` reads frame folders through :mod:`edgedepth.rgbd` (the same reader evaluation uses).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch.utils.data import Dataset

from edgedepth.errors import DataError
from edgedepth.rgbd import list_rgbd_frames, read_rgbd_frame

log = logging.getLogger(__name__)

Sample = dict[str, Any]

# What a broken file raises on the way in: our own DataError (cv2.imread returned None, bad PFM, sizes
# differ...), numpy's ValueError/OSError for a corrupt .npy, and cv2.error from a decoder.
DECODE_ERRORS: tuple[type[BaseException], ...] = (DataError, ValueError, OSError, cv2.error)


class SkippingDataset(Dataset, ABC):
    """A map-style dataset that replaces unreadable samples with the next readable index.

    Subclasses implement ``__len__``, ``_load(i)`` (raise :class:`DataError` when sample ``i`` cannot be
    decoded) and ``_describe(i)`` (the file behind sample ``i``, for logs).

    ``skipped`` counts the replacements made *in the current process*: with ``DataLoader(num_workers > 0)``
    each worker holds its own copy and its own count, and the main process's copy stays at 0. Every bad file
    is therefore also logged once (per process) as a warning through :mod:`logging`, which does reach the
    user from workers. ``bad_paths`` lists the bad files found in this process, in the order found.
    """

    def __init__(self) -> None:
        self.skipped = 0
        self.bad_paths: list[str] = []
        self._bad: set[int] = set()

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def _load(self, index: int) -> Sample:
        """Decode sample ``index`` into the raw sample dict, or raise DataError."""

    @abstractmethod
    def _describe(self, index: int) -> str:
        """The file (or file and frame) behind sample ``index``."""

    def __getitem__(self, index: int) -> Sample:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} samples")
        index %= n
        for step in range(n):
            i = (index + step) % n
            if i in self._bad:
                self.skipped += 1
                continue
            try:
                return self._load(i)
            except DECODE_ERRORS as exc:
                self._mark_bad(i, exc)
        raise DataError(
            f"{type(self).__name__}: none of its {n} samples could be read; see the warnings above"
        )

    def _mark_bad(self, index: int, exc: BaseException) -> None:
        self._bad.add(index)
        self.skipped += 1
        path = self._describe(index)
        self.bad_paths.append(path)
        log.warning("skipping unreadable sample %s: %s", path, exc)


class RGBDFolder(SkippingDataset):
    """Frames with measured depth: one sub-folder per frame (``rgb.png``, a depth file, ``meta.json``).

    Depth may be ``depth_mm.png``, a 16-bit ``depth.png`` with ``depth_scale_m`` in meta.json, ``depth.npy``
    or ``depth.pfm``. Items are raw sample dicts ``{"bgr": uint8 HxWx3, "depth_m": float32 HxW (0 =
    invalid), "source": "rgbd"}``. A missing or empty folder raises DataError naming it.
    """

    source = "rgbd"

    def __init__(self, root: str | Path) -> None:
        super().__init__()
        self.root = Path(root)
        self.frames: list[Path] = list_rgbd_frames(self.root)

    def __len__(self) -> int:
        return len(self.frames)

    def _describe(self, index: int) -> str:
        return str(self.frames[index])

    def _load(self, index: int) -> Sample:
        frame = read_rgbd_frame(self.frames[index])
        depth = np.ascontiguousarray(frame.depth_m, dtype=np.float32)
        return {"bgr": frame.bgr, "depth_m": depth, "source": self.source}
