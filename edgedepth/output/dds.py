"""Live ROS 2 topics without ROS: the recorder's messages published over DDS with Eclipse Cyclone DDS (one of
ROS 2's own middlewares), so that ``ros2 topic echo`` and RViz2 see them.

ROS 2's conventions on the wire: a topic ``/camera/depth/image`` is the DDS topic ``rt/camera/depth/image``,
its type ``sensor_msgs::msg::dds_::Image_``, and the QoS is ROS's sensor-data profile (best effort, keep
last 5, volatile). The domain is ``ROS_DOMAIN_ID`` (0 by default); the network setup is Cyclone DDS's own
(``CYCLONEDDS_URI``), as for any ROS 2 node.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import InputError, OutputError
from ..extras import require_extra
from .ros import RecordOptions, RosTopics


def _types() -> dict[str, Any]:
    """The sensor_msgs types as Cyclone DDS IDL structs (``dds_types``, imported on first use: importing
    cyclonedds is what needs the extra)."""
    from . import dds_types

    return {name: getattr(dds_types, name) for name in dds_types.__all__}


def sensor_qos() -> Any:
    """ROS 2's sensor-data QoS profile: best effort, keep last 5, volatile."""
    from cyclonedds.qos import Policy, Qos

    return Qos(Policy.Reliability.BestEffort, Policy.History.KeepLast(5), Policy.Durability.Volatile)


def domain_id() -> int:
    """``ROS_DOMAIN_ID`` as ROS 2 reads it (0 when unset)."""
    text = os.environ.get("ROS_DOMAIN_ID", "0").strip() or "0"
    if not text.isdigit() or int(text) > 232:
        raise InputError(f"ROS_DOMAIN_ID={text!r}: give a domain from 0 to 232")
    return int(text)


class Ros2Publisher:
    """An output that publishes every frame it is given (``render(frame, result, index, stamp_s)``) on the
    recorder's topics over DDS. ``close()`` leaves the domain."""

    def __init__(self, options: RecordOptions | None = None, sources: int = 1) -> None:
        require_extra("ros2", "publishing ROS 2 topics (--ros2)")
        from cyclonedds.core import DDSException
        from cyclonedds.domain import DomainParticipant

        self.topics = RosTopics(options or RecordOptions(), sources)
        self.types = _types()
        self._qos = sensor_qos()
        try:
            self._participant: Any = DomainParticipant(domain_id())
        except DDSException as exc:
            raise OutputError(f"cannot join ROS 2 domain {domain_id()} (Cyclone DDS: {exc})") from None
        self._writers: dict[str, Any] = {}
        self.frames = 0

    def summary(self) -> str:
        return f"published {self.frames} frames on ROS 2 topics{self.topics.unscaled_note()}"

    def writer(self, topic: str, kind: str) -> Any:
        """The DataWriter of ROS topic ``topic`` (DDS topic ``rt`` + topic), made on first use."""
        from cyclonedds.pub import DataWriter
        from cyclonedds.topic import Topic

        if topic not in self._writers:
            dds_topic = Topic(self._participant, "rt" + topic, self.types[kind], qos=self._qos)
            self._writers[topic] = DataWriter(self._participant, dds_topic, qos=self._qos)
        return self._writers[topic]

    def render(self, frame: np.ndarray, result: Any, index: int = 0, stamp_s: float | None = None) -> bool:
        _, messages = self.topics.messages(frame, result, index, stamp_s)
        for topic, kind, fields in messages:
            self.writer(topic, kind).write(self.build(kind, fields))
        self.frames += 1
        return True

    def build(self, kind: str, fields: dict[str, Any]) -> Any:
        """A message's IDL struct from the fields the recorder writes."""
        t = self.types
        values = dict(fields)
        header = values["header"]
        values["header"] = t["Header"](t["Time"](**header["stamp"]), header["frame_id"])
        if kind == "CameraInfo":
            values["roi"] = t["RegionOfInterest"](**values["roi"])
        if kind == "PointCloud2":
            values["fields"] = [t["PointField"](**f) for f in values["fields"]]
        return t[kind](**values)

    def close(self, keep: bool = True) -> None:
        self._writers.clear()
        self._participant = None
