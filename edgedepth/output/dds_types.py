"""sensor_msgs as Cyclone DDS IDL structs under ROS 2's DDS type names (``sensor_msgs::msg::dds_::Image_``).

Imported only by ``dds.py`` once the ros2 extra is known to be there. No ``from __future__ import
annotations`` here: Cyclone DDS reads the field types from the annotations, and string annotations of nested
structs would have to be looked up by name. Image data is ``sequence<uint8>`` as in ROS 2; Cyclone DDS's
Python binding packs it element by element (about 8 ms for a 256x256 float image on a 2-core CPU); its
``bytes`` type packs in one block but has no XTypes type object, so a topic cannot be made with it.
"""

from dataclasses import dataclass

from cyclonedds.idl import IdlStruct
from cyclonedds.idl.types import array, float64, int32, sequence, uint8, uint32

__all__ = [
    "CameraInfo",
    "CompressedImage",
    "Header",
    "Image",
    "PointCloud2",
    "PointField",
    "RegionOfInterest",
    "Time",
]


@dataclass
class Time(IdlStruct, typename="builtin_interfaces::msg::dds_::Time_"):
    sec: int32
    nanosec: uint32


@dataclass
class Header(IdlStruct, typename="std_msgs::msg::dds_::Header_"):
    stamp: Time
    frame_id: str


@dataclass
class CompressedImage(IdlStruct, typename="sensor_msgs::msg::dds_::CompressedImage_"):
    header: Header
    format: str
    data: sequence[uint8]


@dataclass
class Image(IdlStruct, typename="sensor_msgs::msg::dds_::Image_"):
    header: Header
    height: uint32
    width: uint32
    encoding: str
    is_bigendian: uint8
    step: uint32
    data: sequence[uint8]


@dataclass
class RegionOfInterest(IdlStruct, typename="sensor_msgs::msg::dds_::RegionOfInterest_"):
    x_offset: uint32
    y_offset: uint32
    height: uint32
    width: uint32
    do_rectify: bool


@dataclass
class CameraInfo(IdlStruct, typename="sensor_msgs::msg::dds_::CameraInfo_"):
    header: Header
    height: uint32
    width: uint32
    distortion_model: str
    d: sequence[float64]
    k: array[float64, 9]
    r: array[float64, 9]
    p: array[float64, 12]
    binning_x: uint32
    binning_y: uint32
    roi: RegionOfInterest


@dataclass
class PointField(IdlStruct, typename="sensor_msgs::msg::dds_::PointField_"):
    name: str
    offset: uint32
    datatype: uint8
    count: uint32


@dataclass
class PointCloud2(IdlStruct, typename="sensor_msgs::msg::dds_::PointCloud2_"):
    header: Header
    height: uint32
    width: uint32
    fields: sequence[PointField]
    is_bigendian: bool
    point_step: uint32
    row_step: uint32
    data: sequence[uint8]
    is_dense: bool


def _pack_data_in_one_block() -> None:
    """Serialise the ``data`` of Image, CompressedImage and PointCloud2 with Cyclone DDS's ``bytes`` machine (one block
    copy; the same CDR as ``sequence<uint8>``) instead of its per-element packing, which takes about 8 ms per
    256 KB: the topic keeps the ``sequence<uint8>`` type that ROS 2 declares. This reaches into Cyclone DDS's
    machinery (``__idl__.v1_machine/v2_machine.members_machines``); where that differs, nothing is changed
    and publishing is correct but slower."""
    from cyclonedds.idl._machinery import BytesMachine

    for cls in (Image, CompressedImage, PointCloud2):
        idl = cls.__idl__
        idl.populate()
        for machine in (idl.v1_machine, idl.v2_machine):
            members = getattr(machine, "members_machines", None)
            if isinstance(members, dict) and "data" in members:
                members["data"] = BytesMachine()


_pack_data_in_one_block()
