"""VideoOutput: where frames and their depth go, the peer of VideoSource (a file or a window).

    with est.stream(source) as frames, VideoOutput("out.mp4", fps=frames.source.fps_hint) as out:
        for item in frames:
            if not out.render(item.frame, item.result):
                break

A file gets the frame and its colourised depth side by side (written atomically: the file appears only
when the output closes). A window shows the same view and reports the user's Esc or q as the end.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..errors import InputError, OutputError, SourceError
from ..fileio import check_destination
from ..postprocess import VIDEO_CODECS, SideBySideWriter, ValueRange, side_by_side

if TYPE_CHECKING:
    from ..result import DepthResult

WINDOW = "window"  # the target that opens a window instead of a file


def opencv_has_gui() -> bool:
    """Whether this OpenCV build can open windows (opencv-python: Qt or GTK; opencv-python-headless: no)."""
    match = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    return match is not None and match.group(1).upper() != "NONE"


DEFAULT_FPS = 30.0
QUIT_KEYS = (27, ord("q"))


class VideoOutput:
    """Render ``(frame, DepthResult)`` pairs to ``target``: a video file (.mp4 or .avi) or ``"window"``.

    ``fps`` is the file's frame rate (default 30); ``cmap`` and ``invert`` colour the depth. ``render``
    returns False once the user closed the window; ``close`` finishes the file. The file is opened at the
    first frame, with that frame's size.
    """

    def __init__(
        self,
        target: str | os.PathLike[str],
        *,
        fps: float | None = None,
        cmap: str = "turbo",
        invert: bool = False,
        title: str = "edgedepth",
        overwrite: bool = True,
    ) -> None:
        self.target = os.fspath(target)
        self.is_window = self.target == WINDOW
        if not self.is_window and Path(self.target).suffix.lower() not in VIDEO_CODECS:
            raise InputError(
                f"output {self.target!r}: use a video file ({', '.join(VIDEO_CODECS)}) or {WINDOW!r}"
            )
        if not self.is_window:  # before the first frame: a stream is not run for an output that cannot be
            check_destination(self.target, overwrite)
        elif not opencv_has_gui():
            raise OutputError(
                "cannot show a window: this OpenCV is the headless build edgedepth installs for robots; for "
                "windows run: pip uninstall -y opencv-python-headless && pip install opencv-python "
                "(or use --save FILE.mp4, or edgedepth serve for a browser view)"
            )
        self.overwrite = overwrite
        self.fps = fps or DEFAULT_FPS
        self.cmap, self.invert, self.title = cmap, invert, title
        self.frames = 0
        self._range = ValueRange()  # slowly adapting colours: no per-frame min/max flicker
        self._writer: SideBySideWriter | None = None
        self._closed = False

    def render(self, frame: np.ndarray, result: DepthResult) -> bool:
        """Show or write one frame beside its depth; False when the user asked to stop (window only)."""
        if self._closed:
            raise InputError(f"output {self.target!r} is closed")
        depth = result.colorize(
            self.cmap, self.invert, self._range(result.model_inverse_depth), at_model_resolution=True
        )
        self.frames += 1
        if self.is_window:
            try:
                cv2.imshow(self.title, side_by_side(frame, depth))
                return cv2.waitKey(1) & 0xFF not in QUIT_KEYS
            except cv2.error as exc:
                raise SourceError(f"cannot show a window (is there a display?): {exc}") from None
        if self._writer is None:
            self._writer = SideBySideWriter(
                self.target, self.fps, (frame.shape[1], frame.shape[0]), overwrite=self.overwrite
            )
        self._writer.write(frame, depth)
        return True

    def close(self, keep: bool = True) -> Path | None:
        """Finish the file (or, with ``keep=False``, discard it) and close the window; the file's path."""
        if self._closed:
            return None
        self._closed = True
        if self.is_window:
            if self.frames:
                cv2.destroyWindow(self.title)
            return None
        if self._writer is None:
            return None
        if keep:
            return self._writer.close()
        self._writer.discard()
        return None

    def __enter__(self) -> VideoOutput:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Ctrl-C still keeps what was written; an error discards the partial file.
        self.close(keep=exc_type is None or issubclass(exc_type, KeyboardInterrupt))
