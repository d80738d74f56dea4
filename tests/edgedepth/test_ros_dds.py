"""``stream --ros2``: live sensor_msgs topics over Cyclone DDS, on the loopback interface with multicast off,
received by a DDS reader in this process and decoded by ``rosbags`` from the CDR bytes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("cyclonedds", reason='the ros2 extra is not installed (pip install "edgedepth[ros2]")')
rosbags_typesys = pytest.importorskip(
    "rosbags.typesys", reason="rosbags is not installed (pip install rosbags)"
)

LOOPBACK = (
    '<CycloneDDS><Domain id="any"><General><Interfaces><NetworkInterface name="lo"/></Interfaces>'
    "<AllowMulticast>false</AllowMulticast></General><Discovery><ParticipantIndex>auto</ParticipantIndex>"
    '<Peers><Peer address="127.0.0.1"/></Peers></Discovery></Domain></CycloneDDS>'
)
DOMAIN = "77"  # not the default: nothing else on this machine talks here


@pytest.fixture
def loopback_dds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CYCLONEDDS_URI", LOOPBACK)
    monkeypatch.setenv("ROS_DOMAIN_ID", DOMAIN)


def reader_for(topic: str, kind: str) -> object:
    """A DDS reader of ROS topic ``topic`` with ROS 2's names and the sensor-data QoS."""
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic

    from edgedepth.output.dds import _types, sensor_qos

    participant = DomainParticipant(int(DOMAIN))
    return DataReader(
        participant, Topic(participant, "rt" + topic, _types()[kind], qos=sensor_qos()), qos=sensor_qos()
    )


def test_frames_are_published_as_ros2_topics(loopback_dds: None, tiny_onnx: Path, tmp_path: Path) -> None:
    from edgedepth import DepthEstimator
    from edgedepth.intrinsics import Intrinsics
    from edgedepth.output.dds import Ros2Publisher
    from edgedepth.output.ros import RecordOptions, _cloud

    store = rosbags_typesys.get_typestore(rosbags_typesys.Stores.ROS2_HUMBLE)
    k = Intrinsics(60.0, 60.0, 32.0, 24.0, 64, 48)
    publisher = Ros2Publisher(RecordOptions(namespace="/robot/front", frame_id="front", intrinsics=k))
    depth_reader = reader_for("/robot/front/inverse_depth_relative/image", "Image")
    info_reader = reader_for("/robot/front/camera_info", "CameraInfo")
    frame = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    received: list[object] = []
    infos: list[object] = []
    with DepthEstimator(tiny_onnx, backend="onnxruntime") as est:
        result = est.predict(frame)
        deadline = time.monotonic() + 20  # discovery on loopback takes a fraction of a second
        while (not received or not infos) and time.monotonic() < deadline:
            publisher.render(frame, result, stamp_s=1_700_000_000.25)
            time.sleep(0.05)
            received += depth_reader.take(N=10)  # type: ignore[attr-defined]
            infos += info_reader.take(N=10)  # type: ignore[attr-defined]
    header = {"stamp": {"sec": 5, "nanosec": 6}, "frame_id": "front"}
    points = np.array([[0.1, -0.2, 1.5], [0.0, 0.0, 2.0]], np.float32)
    cloud_struct = publisher.build(
        "PointCloud2", _cloud(header, points, np.array([[255, 0, 0], [0, 0, 255]], np.uint8))
    )
    publisher.close()
    cloud = store.deserialize_cdr(cloud_struct.serialize(), "sensor_msgs/msg/PointCloud2")
    block = np.frombuffer(cloud.data.tobytes(), "<f4").reshape(-1, 4)
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb"] and np.array_equal(block[:, :3], points)
    assert block[:, 3].view("<u4").tolist() == [0xFF0000, 0x0000FF]  # rgb packed as RViz2 reads it
    assert received and infos, "nothing arrived over DDS on the loopback interface within 20 s"
    image = store.deserialize_cdr(received[0].serialize(), "sensor_msgs/msg/Image")  # type: ignore[attr-defined]
    assert (image.encoding, image.height, image.width, image.step) == ("32FC1", 48, 64, 256)
    assert (image.header.stamp.sec, image.header.stamp.nanosec, image.header.frame_id) == (
        1_700_000_000,
        250_000_000,
        "front",
    )
    values = np.frombuffer(image.data.tobytes(), "<f4").reshape(48, 64)
    assert np.allclose(values, result.inverse_depth)
    info = store.deserialize_cdr(infos[0].serialize(), "sensor_msgs/msg/CameraInfo")  # type: ignore[attr-defined]
    assert list(info.k) == [60, 0, 32, 0, 60, 24, 0, 0, 1]


def test_the_cli_publishes_and_says_how_many_frames(
    loopback_dds: None, tiny_onnx: Path, tmp_path: Path
) -> None:
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(8):
        writer.write(np.full((48, 64, 3), 30 * i, np.uint8))
    writer.release()
    cmd = [sys.executable, "-m", "edgedepth.cli", "stream", str(clip), "--ros2", "--model", str(tiny_onnx),
           "--backend", "onnxruntime"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "published 8 frames" in done.stdout
