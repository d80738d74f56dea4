"""``stream --record run.mcap``: ROS 2 messages in MCAP, read back with ``mcap`` and decoded by ``rosbags``, an
independent implementation of ROS 2's message serialisation."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("mcap_ros2", reason='the ros2 extra is not installed (pip install "edgedepth[ros2]")')
rosbags_typesys = pytest.importorskip(
    "rosbags.typesys", reason="rosbags is not installed (pip install rosbags)"
)


def read_messages(path: Path) -> dict[str, list[object]]:
    """Every message of the file by topic, decoded by rosbags from its CDR bytes and its schema name."""
    from mcap.reader import make_reader

    store = rosbags_typesys.get_typestore(rosbags_typesys.Stores.ROS2_HUMBLE)
    topics: dict[str, list[object]] = defaultdict(list)
    with path.open("rb") as f:
        for schema, channel, message in make_reader(f).iter_messages():
            assert schema is not None and schema.encoding == "ros2msg" and channel.message_encoding == "cdr"
            decoded = store.deserialize_cdr(message.data, schema.name)
            assert message.log_time == decoded.header.stamp.sec * 10**9 + decoded.header.stamp.nanosec
            topics[channel.topic].append(decoded)
    return topics


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgedepth.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_a_stream_is_recorded_as_ros2_messages(tiny_onnx: Path, tmp_path: Path) -> None:
    from edgedepth import DepthEstimator

    frame = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    clip = tmp_path / "clip.avi"  # one scene six times (lossless), so one set of points scales every frame
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"FFV1"), 10.0, (64, 48))
    for _ in range(6):
        writer.write(frame)
    writer.release()
    with DepthEstimator(tiny_onnx, backend="onnxruntime") as est:
        inv = est.predict(cv2.VideoCapture(str(clip)).read()[1]).inverse_depth
    rng = np.random.default_rng(1)
    u, v = rng.integers(0, 64, 30), rng.integers(0, 48, 30)
    metres = 1.0 / (0.5 * inv[v, u] - 0.5 * inv.min() + 0.3)  # a metric truth the points measure
    points = tmp_path / "pts.csv"
    points.write_text(
        "u,v,depth_m\n" + "\n".join(f"{a},{b},{d}" for a, b, d in zip(u, v, metres, strict=True))
    )
    camera = tmp_path / "cam.json"
    camera.write_text(json.dumps({"fx": 60, "fy": 60, "cx": 32, "cy": 24, "width": 64, "height": 48}))
    record = tmp_path / "run.mcap"
    model = ["--model", str(tiny_onnx), "--backend", "onnxruntime", "--no-stabilize"]
    started = time.time()
    done = run("stream", str(clip), "--record", str(record), "--intrinsics", str(camera), "--metric-points",
               str(points), "--ros-namespace", "/robot/front", "--frame-id", "front_optical", "--ros-cloud-every", "2",
               *model)  # fmt: skip
    assert done.returncode == 0, done.stderr
    topics = read_messages(record)
    ns = "/robot/front"
    expected = {f"{ns}/image/compressed", f"{ns}/inverse_depth_relative/image", f"{ns}/confidence/image",
                f"{ns}/depth/image", f"{ns}/camera_info"}  # fmt: skip
    clouds = topics.pop(f"{ns}/points")
    assert set(topics) == expected and all(len(m) == 6 for m in topics.values())
    assert len(clouds) == 3  # frames 0, 2 and 4
    cloud = clouds[0]
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb"] and cloud.point_step == 16
    xyz = np.frombuffer(cloud.data.tobytes(), "<f4").reshape(-1, 4)[:, :3]
    assert (
        cloud.width == len(xyz) > 0 and cloud.height == 1 and np.isfinite(xyz).all() and (xyz[:, 2] > 0).all()
    )
    jpeg = topics[f"{ns}/image/compressed"][0]
    assert jpeg.format == "jpeg" and cv2.imdecode(jpeg.data, cv2.IMREAD_COLOR).shape == (48, 64, 3)
    for name in ("inverse_depth_relative", "confidence", "depth"):
        image = topics[f"{ns}/{name}/image"][0]
        assert (image.encoding, image.height, image.width, image.step) == ("32FC1", 48, 64, 256)
        values = np.frombuffer(image.data.tobytes(), "<f4").reshape(48, 64)
        assert np.isfinite(values).any()
    depth = np.frombuffer(topics[f"{ns}/depth/image"][0].data.tobytes(), "<f4").reshape(48, 64)
    assert (depth[np.isfinite(depth)] > 0).all()  # metres; NaN where there is none (REP 118)
    assert np.median(np.abs(depth[v, u] - metres) / metres) < 0.05  # the points' own depths, in metres
    assert "recorded 6 frames to" in done.stdout
    info = topics[f"{ns}/camera_info"][0]
    assert list(info.k) == [60, 0, 32, 0, 60, 24, 0, 0, 1] and (info.width, info.height) == (64, 48)
    stamps = [
        [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in topics[t]] for t in sorted(expected)
    ]
    assert all(s == stamps[0] for s in stamps) and stamps[0] == sorted(set(stamps[0]))  # one stamp per frame
    assert started * 1e9 < stamps[0][0] and stamps[0][-1] < record.stat().st_mtime * 1e9  # capture times
    assert {m.header.frame_id for t in expected for m in topics[t]} == {"front_optical"}
    again = run("stream", str(clip), "--record", str(record), *model)
    assert again.returncode == 2 and "exists; pass --overwrite" in again.stderr
    bad = run("stream", str(clip), "--record", str(tmp_path / "run.bag"), *model)
    assert bad.returncode == 2 and "name an .mcap file" in bad.stderr
    bad = run("stream", str(clip), "--record", str(tmp_path / "x.mcap"), "--ros-namespace", "/1cam", *model)
    assert bad.returncode == 2 and "ROS names" in bad.stderr and not (tmp_path / "x.mcap").exists()
    # without a scale or intrinsics: no metric depth and no camera_info, never relative depth under "depth"
    plain = tmp_path / "plain.mcap"
    assert run("stream", str(clip), "--record", str(plain), *model).returncode == 0
    assert set(read_messages(plain)) == {"/camera/image/compressed", "/camera/inverse_depth_relative/image",
                                         "/camera/confidence/image"}  # fmt: skip


def test_without_the_extra_the_recorder_names_the_pip_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from edgedepth import extras
    from edgedepth.output import McapRecorder, Ros2Publisher

    monkeypatch.setattr(extras, "missing_modules", lambda extra: ["mcap_ros2"] if extra == "ros2" else [])
    for make in (lambda: McapRecorder(tmp_path / "r.mcap"), Ros2Publisher):
        with pytest.raises(
            extras.MissingExtraError, match=r"pip install edgedepth\[ros2\] \(missing: mcap_ros2\)"
        ):
            make()
    assert not list(tmp_path.iterdir())


def test_the_python_api_records_a_stream(tiny_onnx: Path, tmp_path: Path) -> None:
    from edgedepth import DepthEstimator
    from edgedepth.output import McapRecorder, RecordOptions

    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(4):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    with (
        DepthEstimator(tiny_onnx, backend="onnxruntime") as est,
        McapRecorder(tmp_path / "api.mcap", RecordOptions(namespace="/arm")) as recording,
        est.stream(str(clip)) as stream,
    ):
        for item in stream:
            recording.render(item.frame, item.result, item.index, item.captured_at)
    assert {t: len(m) for t, m in read_messages(tmp_path / "api.mcap").items()} == {
        "/arm/image/compressed": 4,
        "/arm/inverse_depth_relative/image": 4,
        "/arm/confidence/image": 4,
    }
