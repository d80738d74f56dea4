"""VideoOutput (edgedepth.output), VideoSource's peer: a video file of frame beside depth (written atomically), or a window."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgedepth.errors import InputError
from edgedepth.output import VideoOutput
from edgedepth.result import DepthResult

W, H = 64, 48


def _grey(value: int) -> np.ndarray:
    return np.full((H, W, 3), value, dtype=np.uint8)


def _result(h: int, w: int) -> DepthResult:
    inv = np.tile(np.linspace(0, 1, w, dtype=np.float32), (h, 1))
    return DepthResult(inv, np.ones_like(inv))


def test_video_output_writes_frame_beside_depth_only_when_finished(tmp_path: Path) -> None:
    path = tmp_path / "out.avi"
    with VideoOutput(path, fps=10) as out:
        for i in range(5):
            assert out.render(_grey(i * 40), _result(H, W))
        assert not path.exists()  # only a hidden partial file while recording
    capture = cv2.VideoCapture(str(path))
    assert (
        int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
        and int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)) == 2 * W
    )
    assert [p.name for p in tmp_path.iterdir()] == ["out.avi"]


def test_video_output_discards_on_error_and_refuses_bad_targets(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError), VideoOutput(path) as out:
        out.render(_grey(0), _result(H, W))
        raise RuntimeError("the loop failed")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match=r"'clip\.gif'.*\.mp4.*'window'"):
        VideoOutput("clip.gif")
    out = VideoOutput(tmp_path / "x.avi")
    out.close()
    with pytest.raises(InputError, match="closed"):
        out.render(_grey(0), _result(H, W))


def test_a_window_on_a_headless_opencv_is_refused_with_the_pip_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgedepth.errors import OutputError
    from edgedepth.output import WINDOW, video

    monkeypatch.setattr(video, "opencv_has_gui", lambda: False)
    with pytest.raises(
        OutputError, match="pip uninstall -y opencv-python-headless && pip install opencv-python"
    ):
        VideoOutput(WINDOW)
