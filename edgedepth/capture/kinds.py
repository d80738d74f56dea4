"""Which kind of source a uri names, and how to open each kind.

``classify_source`` maps a uri to a SourceKind with a small rule table, without opening anything; each
kind has an opener factory returning a zero-arg function that makes a cv2.VideoCapture-like object.
Image folders, globs and RGB-D folders are read by :class:`ImageSequenceCapture`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import socket
import urllib.parse
from collections.abc import Callable, Iterator
from enum import Enum
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError, SourceError
from .records import CaptureLike, Opener

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "tcp://")
GLOB_CHARS = "*?["
RGB_NAMES = ("rgb.png", "rgb.jpg")  # an RGB-D frame folder's colour image (edgedepth.rgbd reads the rest)


def rgb_file(folder: Path) -> Path | None:
    """A frame folder's colour image, or None when it has none."""
    return next((folder / n for n in RGB_NAMES if (folder / n).is_file()), None)


def frame_folders(root: str | Path) -> list[Path]:
    """The sub-folders of ``root`` that hold a frame's colour image, sorted; [] for anything else."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and rgb_file(p) is not None)


# FFmpeg's own open and read timeouts: a dead or stalled server ends in a reconnect, and a capture thread
# blocked in FFmpeg returns within them, so that closing a stream waits at most STREAM_BLOCKING_S.
STREAM_OPEN_TIMEOUT_MS = 5_000
STREAM_READ_TIMEOUT_MS = 3_000
STREAM_BLOCKING_S = max(STREAM_OPEN_TIMEOUT_MS, STREAM_READ_TIMEOUT_MS) / 1000.0
ACCEPTED = (
    "a camera index (0, '0') or /dev/videoN; a video file; an image folder or glob ('frames/*.png'); "
    f"a URL starting with {', '.join(STREAM_SCHEMES)}; or a GStreamer pipeline containing ' ! '"
)


class SourceKind(Enum):
    """What a uri names; CAMERA, STREAM and GSTREAMER are live; FILE (a video), IMAGES and RGBD (a folder
    of frame folders, whose colour images are read) are read in full."""

    CAMERA = "camera"
    FILE = "file"
    IMAGES = "images"
    RGBD = "rgbd"
    STREAM = "stream"
    GSTREAMER = "gstreamer"


LIVE_KINDS = frozenset({SourceKind.CAMERA, SourceKind.STREAM, SourceKind.GSTREAMER})
_CAMERA_DEVICE = re.compile(r"/dev/video\d+")

# First match wins. Existing paths come before the glob test so a file named "a[1].mp4" stays a file.
_RULES: tuple[tuple[SourceKind, Callable[[str], bool]], ...] = (
    (SourceKind.GSTREAMER, lambda s: " ! " in s),
    (SourceKind.STREAM, lambda s: s.lower().startswith(STREAM_SCHEMES)),
    (SourceKind.CAMERA, lambda s: (s.isascii() and s.isdigit()) or _CAMERA_DEVICE.fullmatch(s) is not None),
    (SourceKind.RGBD, lambda s: bool(frame_folders(s))),
    (SourceKind.IMAGES, os.path.isdir),
    (SourceKind.FILE, os.path.isfile),
    (SourceKind.IMAGES, lambda s: any(c in s for c in GLOB_CHARS)),
    (SourceKind.FILE, lambda s: "://" not in s),  # a missing path: opening it names it
)


def classify_source(uri: int | str | os.PathLike[str]) -> SourceKind:
    """Say which kind of source ``uri`` names, without opening anything; SourceError if it fits none."""
    if isinstance(uri, bool) or not isinstance(uri, int | str | os.PathLike):
        raise SourceError(f"source '{uri}' has type {type(uri).__name__}; accepted: {ACCEPTED}")
    if isinstance(uri, int):
        if uri < 0:
            raise SourceError(f"camera index {uri} is negative; accepted: {ACCEPTED}")
        return SourceKind.CAMERA
    text = os.fspath(uri).strip()
    for kind, matches in _RULES if text else ():
        if matches(text):
            return kind
    raise SourceError(f"cannot use source '{uri}': unknown scheme or form; accepted: {ACCEPTED}")


def jetson_csi_pipeline(
    sensor_id: int = 0,
    width: int = 1280,
    height: int = 720,
    fps: int = 30,
    flip: int = 0,
    out_width: int | None = None,
    out_height: int | None = None,
) -> str:
    """The standard GStreamer pipeline for a Jetson CSI camera (nvarguscamerasrc), ending in BGR for OpenCV."""
    for name, value in (("width", width), ("height", height), ("fps", fps)):
        if int(value) <= 0:
            raise InputError(f"jetson_csi_pipeline: {name}={value} must be a positive integer")
    if not 0 <= flip <= 7:
        raise InputError(f"jetson_csi_pipeline: flip={flip} must be an nvvidconv flip-method, one of 0..7")
    if sensor_id < 0:
        raise InputError(f"jetson_csi_pipeline: sensor_id={sensor_id} must be 0 or more")
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! "
        f"video/x-raw(memory:NVMM), width={width}, height={height}, framerate={fps}/1 ! "
        f"nvvidconv flip-method={flip} ! "
        f"video/x-raw, width={out_width or width}, height={out_height or height}, format=BGRx ! "
        "videoconvert ! video/x-raw, format=BGR ! appsink drop=1 max-buffers=1"
    )


class ImageSequenceCapture:
    """A capture-like reader over image files in order; files that fail to decode are skipped and counted."""

    def __init__(self, paths: list[Path]) -> None:
        self._paths = paths
        self._position = 0
        self._open = True
        self.corrupt = 0

    def isOpened(self) -> bool:
        return self._open

    def read(self) -> tuple[bool, np.ndarray | None]:
        while self._open and self._position < len(self._paths):
            path = self._paths[self._position]
            self._position += 1
            image = _decode_image(path)
            if image is not None:
                return True, image
            self.corrupt += 1
        return False, None

    def get(self, prop: int) -> float:
        if prop == cv2.CAP_PROP_FRAME_COUNT:
            return float(len(self._paths))
        if prop == cv2.CAP_PROP_POS_FRAMES:
            return float(self._position)
        return 0.0

    def release(self) -> None:
        self._open = False


def _decode_image(path: Path) -> np.ndarray | None:
    """Decode one image as BGR uint8 (via imdecode, so non-ASCII paths work); None if unreadable."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
        return cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except (OSError, cv2.error):
        return None


def list_images(folder_or_glob: str) -> list[Path]:
    """Image files of a folder (not recursive) or a glob pattern, sorted by path; SourceError if none."""
    if os.path.isdir(folder_or_glob):
        candidates = [p for p in Path(folder_or_glob).iterdir() if p.is_file()]
        where = f"folder '{folder_or_glob}'"
    else:
        candidates = [Path(p) for p in glob.glob(folder_or_glob, recursive=True) if os.path.isfile(p)]
        where = f"glob '{folder_or_glob}'"
    images = sorted(p for p in candidates if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise SourceError(f"{where} holds no image files; accepted suffixes: {', '.join(IMAGE_SUFFIXES)}")
    return images


# FFmpeg's own log lines ("[tcp @ 0x...] Connection refused") repeat what edgedepth reports in its errors.
# Quiet unless the user asked for them; OpenCV reads this once, when its FFmpeg backend first starts.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}
PROBE_TIMEOUT_S = 3.0


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """OpenCV's own warnings off while edgedepth opens a capture (it reports failures itself)."""
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(previous)


def capture(target: int | str, api: int, params: list[int] | None = None) -> CaptureLike:
    """A cv2.VideoCapture opened quietly."""
    with quiet_opencv():
        return cv2.VideoCapture(target, api, params or [])


def diagnose_stream(url: str) -> str:
    """Why a well-formed stream URL does not open: the host's name, its port, or the stream itself."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname, parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    if not host or port is None:
        return "the URL names no host and port"
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            pass
    except socket.gaierror:
        return f"the host name {host!r} does not resolve"
    except ConnectionRefusedError:
        return f"connection refused by {host}:{port} (nothing listens there)"
    except TimeoutError:
        return f"timeout: {host}:{port} did not answer within {PROBE_TIMEOUT_S:.0f} s"
    except OSError as exc:
        return f"{host}:{port} cannot be reached ({exc.strerror or exc})"
    return (
        f"{host}:{port} answers, but no stream could be opened there (unsupported format, wrong path, or "
        "the server wants authentication)"
    )


def _camera_opener(text: str, api: int | None) -> Opener:
    target: int | str = int(text) if text.isdigit() else text

    def open_camera() -> CaptureLike:
        if isinstance(target, str) and not os.path.exists(target):
            raise SourceError(f"camera device {target} does not exist (unplugged, or no such camera)")
        return capture(target, cv2.CAP_ANY if api is None else api)

    return open_camera


def _file_opener(text: str, api: int | None) -> Opener:
    def open_file() -> CaptureLike:
        if not os.path.isfile(text):
            raise SourceError(f"video file '{text}' does not exist; accepted sources: {ACCEPTED}")
        return capture(text, cv2.CAP_ANY if api is None else api)

    open_file()  # a missing file fails here, with its name, rather than at first read
    return open_file


def _images_opener(text: str, api: int | None) -> Opener:
    paths = list_images(text)
    return lambda: ImageSequenceCapture(paths)


def _rgbd_opener(text: str, api: int | None) -> Opener:
    paths = [p for p in map(rgb_file, frame_folders(text)) if p is not None]
    return lambda: ImageSequenceCapture(paths)


def _stream_opener(text: str, api: int | None) -> Opener:
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        STREAM_OPEN_TIMEOUT_MS,
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        STREAM_READ_TIMEOUT_MS,
    ]
    return lambda: capture(text, cv2.CAP_FFMPEG if api is None else api, params)


def _gstreamer_opener(text: str, api: int | None) -> Opener:
    return lambda: capture(text, cv2.CAP_GSTREAMER if api is None else api)


OPENERS: dict[SourceKind, Callable[[str, int | None], Opener]] = {
    SourceKind.CAMERA: _camera_opener,
    SourceKind.FILE: _file_opener,
    SourceKind.IMAGES: _images_opener,
    SourceKind.RGBD: _rgbd_opener,
    SourceKind.STREAM: _stream_opener,
    SourceKind.GSTREAMER: _gstreamer_opener,
}


@cache
def opencv_has(feature: str) -> bool:
    """Whether this OpenCV build lists ``feature`` (e.g. GStreamer) as YES in its build information."""
    match = re.search(rf"^\s*{feature}:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    return match is not None and match.group(1).upper() == "YES"


def read_video_frames(
    path: str | os.PathLike[str], limit: int | None = None, hw: tuple[int, int] | None = None
) -> list[np.ndarray]:
    """The first ``limit`` (None: all) consecutive frames of a video file, BGR, each resized to ``hw``
    (H, W) when given, as a camera of that size would deliver them. An unreadable file gives no frames."""
    capture = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    try:
        while limit is None or len(frames) < limit:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame if hw is None else cv2.resize(frame, hw[::-1], interpolation=cv2.INTER_AREA))
    finally:
        capture.release()
    return frames
