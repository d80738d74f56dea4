"""The implicit-INT8 calibration cache: TensorRT's bytes behind a header that binds them to the model's
sha256, the TensorRT version and the preprocessing; a cache made for anything else is refused, never
silently reused. Plain Python, tested in CI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgedepth.artifact import ModelSpec
from edgedepth.errors import ModelLoadError
from edgedepth.fileio import read_framed_header, write_framed

from .errors import CalibrationError

CACHE_MAGIC = b"EDGEDEPTH-CAL\x00\x00\x01"


def calibration_binding(
    onnx_sha256: str, tensorrt_version: str, spec: ModelSpec, input_hw: tuple[int, int]
) -> dict[str, Any]:
    """What an implicit-INT8 calibration cache is valid for; any difference makes it unusable."""
    preprocessing = {**spec.preprocessing(), "input_hw": list(input_hw)}
    return {"onnx_sha256": onnx_sha256, "tensorrt_version": tensorrt_version, "preprocessing": preprocessing}


def binding_differences(stored: Any, wanted: dict[str, Any]) -> list[str]:
    if not isinstance(stored, dict):
        return ["the cache's binding is not a JSON object"]
    out = []
    for key, value in wanted.items():
        if isinstance(value, dict) and isinstance(stored.get(key), dict):
            out += [
                f"preprocessing {k}: cache {stored[key].get(k)!r}, now {v!r}"
                for k, v in value.items()
                if stored[key].get(k) != v
            ]
        elif stored.get(key) != value:
            out.append(f"{key}: cache {stored.get(key)!r}, now {value!r}")
    return out


def read_calibration_cache(path: str | Path, binding: dict[str, Any]) -> bytes | None:
    """The cache's TensorRT bytes when it exists and matches ``binding``; None when there is none.

    A cache made for another model, TensorRT version or preprocessing raises CalibrationError.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        stored, offset, _ = read_framed_header(path, CACHE_MAGIC, "calibration cache")
    except ModelLoadError as exc:
        raise CalibrationError(f"{exc}; delete it or pass another --calibration-cache") from None
    problems = binding_differences(stored, binding)
    if problems:
        raise CalibrationError(
            f"calibration cache {path} was made for something else ({'; '.join(problems)}); it is not reused. "
            "Delete it to calibrate afresh, or pass another --calibration-cache path"
        )
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read()


def write_calibration_cache(path: str | Path, binding: dict[str, Any], cache: bytes) -> None:
    write_framed(path, CACHE_MAGIC, binding, cache)
