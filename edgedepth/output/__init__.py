"""Where results go, the peers of the sources in ``edgedepth.capture``: a video file of frame and depth side by
side (written atomically), or a window.

- ``video``: VideoOutput.
"""

from __future__ import annotations

from .video import WINDOW, VideoOutput

__all__ = ["WINDOW", "VideoOutput"]
