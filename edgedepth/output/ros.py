"""ROS 2 recordings without ROS: a stream's frames, depth and confidence as ``sensor_msgs`` messages in an MCAP
file (rosbag2's default storage), with ``mcap`` and ``mcap-ros2-support`` (``pip install "edgedepth[ros2]"``).

Per source, under its namespace (``/camera``; several sources: ``/camera_0``, ``/camera_1``, ...):

- ``NS/image/compressed``: the colour frame, ``sensor_msgs/msg/CompressedImage`` (JPEG);
- ``NS/depth/image``: metric depth, ``sensor_msgs/msg/Image`` ``32FC1`` in metres (REP 118: NaN where there is
  no depth), only when a metric scale is known (``--camera-height`` or ``--metric-points`` with
  ``--intrinsics``), and only for the frames whose scale could be fitted (``unscaled`` counts the others);
- ``NS/inverse_depth_relative/image``: the model's relative inverse depth, ``32FC1``, always. It has no unit:
  its scale and shift change from frame to frame, so it is never to be read as metres (nearer is larger);
- ``NS/confidence/image``: the model's confidence, ``32FC1`` in 0..1;
- ``NS/camera_info``: ``sensor_msgs/msg/CameraInfo`` from ``--intrinsics``, scaled to the frame;
- ``NS/points``: with ``--ros-cloud-every N`` and a metric scale, a coloured ``sensor_msgs/msg/PointCloud2``
  (x, y, z in metres and rgb, every 2nd pixel) every N frames.

Every message of a frame carries the same header stamp (the wall-clock time the frame was captured: the
stream's ``captured_at``; the time of recording when none is given) and the source's ``frame_id``. The file is written
under a temporary name and renamed when it is closed: a crash leaves no half-written recording behind.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from ..errors import InputError, OutputError
from ..extras import require_extra
from ..fileio import PendingFile

TIME = "int32 sec\nuint32 nanosec\n"
HEADER = "builtin_interfaces/Time stamp\nstring frame_id\n"
SEPARATOR = "=" * 80 + "\n"
MSG_TEXT = {
    "sensor_msgs/msg/CompressedImage": "std_msgs/Header header\nstring format\nuint8[] data\n",
    "sensor_msgs/msg/Image": (
        "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\nuint8 is_bigendian\n"
        "uint32 step\nuint8[] data\n"
    ),
    "sensor_msgs/msg/PointCloud2": (
        "std_msgs/Header header\nuint32 height\nuint32 width\nsensor_msgs/PointField[] fields\nbool is_bigendian\n"
        "uint32 point_step\nuint32 row_step\nuint8[] data\nbool is_dense\n"
    ),
    "sensor_msgs/msg/CameraInfo": (
        "std_msgs/Header header\nuint32 height\nuint32 width\nstring distortion_model\nfloat64[] d\n"
        "float64[9] k\nfloat64[9] r\nfloat64[12] p\nuint32 binning_x\nuint32 binning_y\n"
        "sensor_msgs/RegionOfInterest roi\n"
    ),
}
ROI = "uint32 x_offset\nuint32 y_offset\nuint32 height\nuint32 width\nbool do_rectify\n"
POINT_FIELD = (
    "uint8 INT8=1\nuint8 UINT8=2\nuint8 INT16=3\nuint8 UINT16=4\nuint8 INT32=5\nuint8 UINT32=6\nuint8 FLOAT32=7\n"
    "uint8 FLOAT64=8\nstring name\nuint32 offset\nuint8 datatype\nuint32 count\n"
)
FLOAT32 = 7  # sensor_msgs/PointField's datatype of x, y, z and the packed rgb


def msgdef(datatype: str) -> str:
    """The full ROS 2 message definition of ``datatype`` with its dependencies, as rosbag2 stores it."""
    parts = [MSG_TEXT[datatype], SEPARATOR + "MSG: std_msgs/Header\n" + HEADER]
    parts.append(SEPARATOR + "MSG: builtin_interfaces/Time\n" + TIME)
    if datatype.endswith("CameraInfo"):
        parts.append(SEPARATOR + "MSG: sensor_msgs/RegionOfInterest\n" + ROI)
    if datatype.endswith("PointCloud2"):
        parts.append(SEPARATOR + "MSG: sensor_msgs/PointField\n" + POINT_FIELD)
    return "".join(parts)


def topic_namespace(namespace: str, index: int, count: int) -> str:
    """``/camera`` for one source, ``/camera_0``, ``/camera_1``, ... for several; checked as a ROS name."""
    ns = "/" + namespace.strip("/")
    if not all(part and (part[0].isalpha() or part[0] == "_") and part.replace("_", "a").isalnum()
               for part in ns.strip("/").split("/")):  # fmt: skip
        raise InputError(
            f"--ros-namespace {namespace!r}: ROS names are /-separated parts of letters, digits and _, each "
            "starting with a letter or _ (e.g. /robot/camera)"
        )
    return ns if count == 1 else f"{ns}_{index}"


@dataclass(frozen=True)
class RecordOptions:
    """What a recording names: the topic namespace and frame_id (one source; several get ``_0``, ``_1``, ...),
    the camera's intrinsics (a CameraInfo topic) and a metric scale (``CloudSettings``: a depth topic in
    metres, and with ``cloud_every`` a coloured PointCloud2 every N frames). ``jpeg_quality`` for the colour
    frames."""

    namespace: str = "/camera"
    frame_id: str = "camera"
    intrinsics: Any = None  # Intrinsics
    metric: Any = None  # CloudSettings, whose fit(result) gives the scale
    jpeg_quality: int = 90
    cloud_every: int = 0  # a PointCloud2 every N frames of a source (0: none); needs the scale and intrinsics
    cloud_stride: int = 2  # every 2nd pixel of each row and column


class RosTopics:
    """The topics and messages of a stream's frames, shared by the recorder and the live publisher."""

    def __init__(self, options: RecordOptions, sources: int) -> None:
        self.options = options
        self.namespaces = [topic_namespace(options.namespace, i, sources) for i in range(sources)]
        self.frame_ids = [
            options.frame_id if sources == 1 else f"{options.frame_id}_{i}" for i in range(sources)
        ]
        self.unscaled = 0  # frames without metric depth: the scale could not be fitted
        self._seen = [0] * sources  # frames per source, for cloud_every

    def messages(
        self, frame: np.ndarray, result: Any, index: int = 0, stamp_s: float | None = None
    ) -> tuple[int, list[tuple[str, str, dict[str, Any]]]]:
        """The frame's stamp (ns since the epoch) and its (topic, message type, fields) in publishing order."""
        stamp = time.time() if stamp_s is None else stamp_s
        sec = math.floor(stamp)  # seconds and the fraction apart: a double holds ns only below 2**53 ns
        nanos = sec * 1_000_000_000 + min(round((stamp - sec) * 1e9), 999_999_999)
        header = {"stamp": {"sec": nanos // 1_000_000_000, "nanosec": nanos % 1_000_000_000},
                  "frame_id": self.frame_ids[index]}  # fmt: skip
        ns = self.namespaces[index]
        ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.options.jpeg_quality])
        if not ok:
            raise OutputError("could not encode a frame as JPEG")
        inv = result.inverse_depth
        out = [
            (
                f"{ns}/image/compressed",
                "CompressedImage",
                {"header": header, "format": "jpeg", "data": jpeg.tobytes()},
            ),
            (f"{ns}/inverse_depth_relative/image", "Image", _image(header, inv)),
            (f"{ns}/confidence/image", "Image", _image(header, result.confidence)),
        ]
        if self.options.metric is not None:
            try:
                fit = self.options.metric.fit(result)
            except InputError:  # no scale for this frame (no floor, too few points agree): no metric depth
                self.unscaled += 1
            else:
                depth = fit.depth(inv)
                depth = np.where(np.isfinite(depth) & (depth > 0), depth, np.nan).astype(np.float32)
                out.append((f"{ns}/depth/image", "Image", _image(header, depth)))
                every, k = self.options.cloud_every, self.options.intrinsics
                if every and k is not None and self._seen[index] % every == 0:
                    h, w = inv.shape
                    points, colors = result.point_cloud(
                        k.scaled_to(w, h), fit, image_bgr=frame,
                        stride=self.options.cloud_stride, max_depth=self.options.metric.max_depth,
                    )  # fmt: skip
                    out.append((f"{ns}/points", "PointCloud2", _cloud(header, points, colors)))
        if self.options.intrinsics is not None:
            h, w = inv.shape
            out.append(
                (
                    f"{ns}/camera_info",
                    "CameraInfo",
                    _camera_info(header, self.options.intrinsics.scaled_to(w, h)),
                )
            )
        self._seen[index] += 1
        return nanos, out

    def unscaled_note(self) -> str:
        """What an output's summary adds when some frames went without metric depth."""
        return f" ({self.unscaled} without metric depth: no scale fitted)" if self.unscaled else ""


class McapRecorder:
    """An output that records every frame it is given (``render(frame, result, index, stamp_s)``) as ROS 2
    messages into ``path`` (``.mcap``), committed by :meth:`close`. ``sources``: how many sources the stream
    has (each gets its own namespace)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        options: RecordOptions | None = None,
        sources: int = 1,
        overwrite: bool = False,
    ) -> None:
        require_extra("ros2", "recording ROS 2 messages (--record)")
        from mcap_ros2.writer import Writer

        if Path(path).suffix.lower() != ".mcap":
            raise InputError(f"--record {path}: name an .mcap file (rosbag2's storage format)")
        self.topics = RosTopics(options or RecordOptions(), sources)
        self._file = PendingFile(path, ".partial.mcap", overwrite)
        assert self._file.temp_path is not None
        self._stream = open(self._file.temp_path, "wb")  # noqa: SIM115 (closed in close())
        self._writer = Writer(self._stream)
        self._schemas = {name: self._writer.register_msgdef(name, msgdef(name)) for name in MSG_TEXT}
        self.frames = 0
        self._closed = False

    def summary(self) -> str:
        return f"recorded {self.frames} frames to {self._file.shown}{self.topics.unscaled_note()}"

    def render(self, frame: np.ndarray, result: Any, index: int = 0, stamp_s: float | None = None) -> bool:
        """Record one frame of source ``index`` with its results; True (a recording never asks to stop)."""
        if self._closed:
            raise OutputError(f"recording {self._file.shown} is closed")
        nanos, messages = self.topics.messages(frame, result, index, stamp_s)
        for topic, kind, message in messages:
            try:
                self._writer.write_message(topic, self._schemas[f"sensor_msgs/msg/{kind}"], message,
                                           log_time=nanos, publish_time=nanos)  # fmt: skip
            except OSError as exc:
                raise OutputError(f"recording {self._file.shown}: {exc}") from None
        self.frames += 1
        return True

    def close(self, keep: bool = True) -> Path | None:
        """Finish the file and move it into place (``keep``), or discard it; the recording's path."""
        if self._closed:
            return None
        self._closed = True
        try:
            self._writer.finish()
            self._stream.close()
        except OSError as exc:
            self._file.discard()
            raise OutputError(f"recording {self._file.shown}: {exc}") from None
        if not keep or self.frames == 0:
            self._file.discard()
            return None
        return self._file.commit()

    def __enter__(self) -> McapRecorder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(keep=exc_type is None or issubclass(exc_type, KeyboardInterrupt))


def _image(header: dict[str, Any], array: np.ndarray) -> dict[str, Any]:
    """A ``32FC1`` sensor_msgs/Image (little-endian float32, rows packed)."""
    data = np.ascontiguousarray(array, dtype="<f4")
    h, w = data.shape
    return {"header": header, "height": h, "width": w, "encoding": "32FC1", "is_bigendian": 0, "step": w * 4,
            "data": data.tobytes()}  # fmt: skip


def _cloud(header: dict[str, Any], points: np.ndarray, colors: np.ndarray | None) -> dict[str, Any]:
    """An unordered PointCloud2 of x, y, z (metres, float32) and rgb packed in a float32, as RViz2 reads it."""
    n = len(points)
    rgb = (
        np.zeros(n, "<u4")
        if colors is None
        else (colors.astype("<u4") * np.array([1 << 16, 1 << 8, 1], "<u4")).sum(1, dtype="<u4")
    )
    block = np.empty((n, 4), "<f4")
    block[:, :3] = points
    block[:, 3] = rgb.view("<f4")
    fields = [
        {"name": name, "offset": 4 * i, "datatype": FLOAT32, "count": 1} for i, name in enumerate("xyz")
    ]
    fields.append({"name": "rgb", "offset": 12, "datatype": FLOAT32, "count": 1})
    return {"header": header, "height": 1, "width": n, "fields": fields, "is_bigendian": False, "point_step": 16,
            "row_step": 16 * n, "data": block.tobytes(), "is_dense": True}  # fmt: skip


def _camera_info(header: dict[str, Any], k: Any) -> dict[str, Any]:
    """A pinhole CameraInfo without distortion (the model sees the image as given)."""
    matrix = [k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0]
    return {
        "header": header, "height": k.height, "width": k.width, "distortion_model": "plumb_bob",
        "d": [0.0] * 5, "k": matrix, "r": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        "p": [k.fx, 0.0, k.cx, 0.0, 0.0, k.fy, k.cy, 0.0, 0.0, 0.0, 1.0, 0.0], "binning_x": 0, "binning_y": 0,
        "roi": {"x_offset": 0, "y_offset": 0, "height": 0, "width": 0, "do_rectify": False},
    }  # fmt: skip
