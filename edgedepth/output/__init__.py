"""Where results go, the peers of the sources in ``edgedepth.capture``: a video file of frame and depth side by
side (written atomically) or a window, a ROS 2 recording, live ROS 2 topics.

- ``video``: VideoOutput.
- ``ros``: McapRecorder (sensor_msgs in an MCAP file) and the topics both ROS 2 outputs share.
- ``dds``: Ros2Publisher (the same topics live over Cyclone DDS).

The ROS 2 outputs need ``pip install "edgedepth[ros2]"``; they say so when it is missing.
"""

from __future__ import annotations

from .dds import Ros2Publisher
from .ros import McapRecorder, RecordOptions
from .video import WINDOW, VideoOutput
from .web import WebOutput

__all__ = ["WINDOW", "McapRecorder", "RecordOptions", "Ros2Publisher", "VideoOutput", "WebOutput"]
