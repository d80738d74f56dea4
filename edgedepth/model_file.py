"""The spec a model file carries, read by its suffix: an ONNX file's metadata, a TensorRT engine's header.

Neither needs an inference session, nor the ``onnx`` package: an ONNX file is a protobuf ``ModelProto``,
and its ``metadata_props`` (field 14, key/value string pairs) sit at the top level beside the graph. The
reader walks the top-level fields of the memory-mapped file and skips the others by their length, so the
weights are never read, let alone parsed.
"""

from __future__ import annotations

import mmap
from pathlib import Path

from .artifact import ModelSpec
from .errors import ModelLoadError

# ModelProto's field numbers (onnx.proto): ir_version, graph and metadata_props.
_IR_VERSION, _GRAPH, _METADATA_PROPS = 1, 7, 14
_KEY, _VALUE = 1, 2  # StringStringEntryProto


def read_spec(path: str | Path) -> ModelSpec:
    """The spec of ``path``: a TensorRT engine's header (``.engine``, read without TensorRT), else an ONNX
    file's metadata."""
    if Path(path).suffix.lower() == ".engine":
        from .engine_file import read_engine_header

        return read_engine_header(path)[0].spec
    return read_onnx_spec(path)


def read_onnx_spec(path: str | Path) -> ModelSpec:
    """The spec in an ONNX file's metadata (no inference session is created)."""
    return ModelSpec.from_metadata(read_onnx_metadata(path), source=str(path))


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """An ONNX model's ``metadata_props`` as a dict; a file that is not an ONNX model raises ModelLoadError."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist")
    try:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            fields = dict.fromkeys((_IR_VERSION, _GRAPH), False)
            metadata: dict[str, str] = {}
            for number, start, end in _fields(data, 0, len(data)):
                fields[number] = True
                if number == _METADATA_PROPS:
                    entry = {n: bytes(data[a:b]).decode() for n, a, b in _fields(data, start, end)}
                    metadata[entry.get(_KEY, "")] = entry.get(_VALUE, "")
    except (ValueError, OSError, UnicodeDecodeError) as exc:  # mmap of an empty file raises ValueError
        raise ModelLoadError(f"{path}: not a readable ONNX model ({exc})") from None
    if not (fields[_IR_VERSION] and fields[_GRAPH]):
        raise ModelLoadError(f"{path}: not a readable ONNX model (no ir_version or graph)")
    return metadata


def _varint(data: mmap.mmap, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise ValueError(f"truncated or overlong varint at byte {pos}")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


def _fields(data: mmap.mmap, pos: int, end: int):
    """The fields of one protobuf message in ``data[pos:end]``: (number, value start, value end). Only
    length-delimited values are meant to be read; the others are skipped over."""
    while pos < end:
        tag, pos = _varint(data, pos, end)
        number, wire = tag >> 3, tag & 7
        start = pos
        if wire == 0:
            _, pos = _varint(data, pos, end)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, start = _varint(data, pos, end)
            pos = start + length
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"wire type {wire} at byte {start} is not one ONNX uses")
        if pos > end or number == 0:
            raise ValueError(f"field {number} at byte {start} runs past the message")
        yield number, start, pos
