"""The engine file (JSON header + plan) and the compatibility checks made before deserialization.

These run the real parsing and checking code; the plan bytes are opaque to it, so no TensorRT is needed and
none is imitated: nothing here pretends an engine ran.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from edgedepth.artifact import Precision
from edgedepth.backends import BackendKind, backend_status
from edgedepth.engine_file import (
    MAGIC,
    BuildFlags,
    EngineHeader,
    ShapeProfile,
    check_compatibility,
    compatibility_problems,
    read_engine,
    read_engine_header,
    rebuild_command,
    write_engine,
)
from edgedepth.errors import BackendUnavailableError, InputError, ModelLoadError
from edgedepth.model_file import read_onnx_spec
from edgedepth_quantize.cli import build_parser as quantize_parser
from edgedepth_quantize.engine import build_command
from tests.tiny_models import tiny_spec

PLAN = bytes(range(256)) * 64  # opaque to the header code


def make_header(precision: Precision = Precision.FP16, **changes: object) -> EngineHeader:
    header = EngineHeader(
        spec=tiny_spec().with_updates(precision=precision),
        tensorrt_version="10.3.0.30",
        compute_capability=(8, 7),
        device_name="Orin",
        profile=ShapeProfile((1, 3, 64, 64), (1, 3, 256, 256), (4, 3, 256, 256)),
        onnx_sha256="ab" * 32,
        onnx_name="efficientdepth-s-fp32.onnx",
        flags=BuildFlags(memory_pool_mib=1024),
        edgedepth_version="0.1.0",
    )
    return replace(header, **changes)  # type: ignore[arg-type]


def test_header_and_plan_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "m.engine"
    written = write_engine(path, make_header(), PLAN)
    header, plan = read_engine(path)
    assert plan == PLAN
    assert header == written
    assert header.spec == tiny_spec().with_updates(precision=Precision.FP16)
    assert header.plan_size == len(PLAN)
    assert header.profile.contains((2, 3, 128, 192))
    assert not header.profile.contains((8, 3, 256, 256))


def test_truncated_engine_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.engine"
    write_engine(path, make_header(), PLAN)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ModelLoadError, match="truncated or corrupt"):
        read_engine_header(path)


def test_corrupted_plan_fails_its_checksum(tmp_path: Path) -> None:
    path = tmp_path / "m.engine"
    write_engine(path, make_header(), PLAN)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="sha256"):
        read_engine(path)


def test_bare_tensorrt_plan_names_the_build_command(tmp_path: Path) -> None:
    path = tmp_path / "bare.engine"
    path.write_bytes(PLAN)
    with pytest.raises(ModelLoadError, match="build-engine"):
        read_engine_header(path)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda h: h.pop("tensorrt_version"), "no 'tensorrt_version'"),
        (lambda h: h.update(format=99), "format 99"),
        (lambda h: h.update(compute_capability="sm87"), "compute capability"),
        (lambda h: h["spec"].update({"edgedepth.precision": '"int4"'}), "precision"),
        (lambda h: h["profile"].update(min=[1, 3, 512, 512]), "min 512 <= opt 256"),
        (lambda h: h["flags"].update(hardware_compatibility="any"), "hardware_compatibility"),
        (lambda h: h["spec"].pop("edgedepth.name"), "edgedepth.name"),
    ],
)
def test_malformed_headers_name_the_key(tmp_path: Path, mutate, message: str) -> None:
    header = make_header().to_json()
    mutate(header)
    encoded = json.dumps(header).encode()
    path = tmp_path / "bad.engine"
    path.write_bytes(MAGIC + len(encoded).to_bytes(4, "little") + encoded + PLAN)
    with pytest.raises(ModelLoadError, match=message):
        read_engine_header(path)


def test_same_release_and_gpu_is_compatible() -> None:
    assert compatibility_problems(make_header(), "10.3.0.30", (8, 7)) == []
    assert compatibility_problems(make_header(), "10.3.0", (8, 7)) == []


@pytest.mark.parametrize(
    ("flags", "running", "cc", "ok"),
    [
        (BuildFlags(), "10.3.1.0", (8, 7), False),  # another patch release
        (BuildFlags(), "8.6.2.3", (8, 7), False),
        (BuildFlags(), "10.3.0.30", (7, 2), False),  # Xavier
        (BuildFlags(), "10.3.0.30", (8, 6), False),
        (BuildFlags(version_compatible=True), "10.7.0.23", (8, 7), True),  # later 10.x
        (BuildFlags(version_compatible=True), "10.2.0.19", (8, 7), False),  # earlier
        (BuildFlags(version_compatible=True), "11.0.0.1", (8, 7), False),  # next major
        (BuildFlags(hardware_compatibility="ampere_plus"), "10.3.0.30", (9, 0), True),
        (BuildFlags(hardware_compatibility="ampere_plus"), "10.3.0.30", (7, 5), False),
    ],
)
def test_version_and_compute_capability_rules(
    flags: BuildFlags, running: str, cc: tuple[int, int], ok: bool
) -> None:
    assert (compatibility_problems(make_header(flags=flags), running, cc) == []) is ok


def test_mismatch_names_both_sides_and_a_rebuild_command_that_parses(tmp_path: Path) -> None:
    header = make_header(flags=BuildFlags(dla_core=0, version_compatible=True), precision=Precision.INT8)
    header = replace(header, flags=replace(header.flags, int8_mode="calibrator"))
    # The builder records its own command line; the runtime only prints it back.
    header = replace(
        header,
        build_command=build_command(header.onnx_name, header.spec.precision, header.profile, header.flags),
    )
    with pytest.raises(ModelLoadError) as info:
        check_compatibility(header, tmp_path / "m.engine", "11.1.0.5", (7, 2), "Xavier")
    message = str(info.value)
    for needed in ("10.3.0.30", "11.1.0.5", "8.7", "7.2", "Orin", "Xavier", "edgedepth build-engine"):
        assert needed in message
    command = shlex.split(rebuild_command(header, tmp_path / "m.engine"))
    assert command[:2] == ["edgedepth", "build-engine"]
    args = quantize_parser().parse_args(command[1:])  # the same sub-command the edgedepth CLI registers
    assert args.precision == "int8" and args.dla_core == 0 and args.version_compatible
    assert args.min_shape == (1, 3, 64, 64) and args.max_shape == (4, 3, 256, 256)
    assert args.calibration == ["CALIBRATION_IMAGES_OR_VIDEO"]
    plain = shlex.split(rebuild_command(make_header(), tmp_path / "m.engine"))  # a header without the record
    assert plain == [
        "edgedepth",
        "build-engine",
        "efficientdepth-s-fp32.onnx",
        "--precision",
        "fp16",
        "-o",
        str(tmp_path / "m.engine"),
    ]


def test_profile_validation() -> None:
    with pytest.raises(InputError, match="N x 3 x H x W"):
        ShapeProfile((1, 1, 64, 64), (1, 1, 64, 64), (1, 1, 64, 64))
    with pytest.raises(InputError, match="W: min 128"):
        ShapeProfile((1, 3, 64, 128), (1, 3, 64, 64), (1, 3, 64, 64))


def test_engine_routes_to_tensorrt_which_reports_why_it_is_unavailable(tmp_path: Path) -> None:
    from edgedepth import DepthEstimator

    if backend_status(BackendKind.TENSORRT).available:
        pytest.skip("TensorRT is usable here; tests/edgedepth/test_tensorrt_gpu.py covers loading")
    path = tmp_path / "m.engine"
    write_engine(path, make_header(), PLAN)
    with pytest.raises(BackendUnavailableError, match="tensorrt"):
        DepthEstimator(path)


def test_info_prints_the_header_without_tensorrt(tmp_path: Path) -> None:
    path = tmp_path / "m.engine"
    write_engine(path, make_header(spec=read_onnx_spec(default_onnx())), PLAN)
    out = subprocess.run(
        [sys.executable, "-m", "edgedepth.cli", "info", str(path)], capture_output=True, text=True
    )
    assert "built with TensorRT 10.3.0.30 on Orin (compute capability 8.7)" in out.stdout
    assert "1x3x64x64 .. 1x3x256x256 .. 4x3x256x256" in out.stdout
    if not backend_status(BackendKind.TENSORRT).available:
        assert out.returncode == 2 and "tensorrt" in out.stderr


def default_onnx() -> Path:
    from edgedepth import default_model_path

    return default_model_path(Precision.FP32)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("mean", [float("nan"), 0.5, 0.5], "mean"),
        ("input_size", [1 << 15, 1 << 15], "input size limit"),
        ("profile", {"min": [1, 3, 64, 64], "opt": [1, 3, 64, 64], "max": [1 << 62, 3, 64, 64]}, "limits"),
    ],
)
def test_a_header_with_absurd_values_is_refused(
    tmp_path: Path, field: str, value: object, match: str
) -> None:
    """NaN mean/std, a 2^30-pixel input and a 2^62 profile once loaded; they are ModelLoadErrors now."""
    path = tmp_path / "m.engine"
    write_engine(path, make_header(), PLAN)
    data = path.read_bytes()
    length = int.from_bytes(data[len(MAGIC) : len(MAGIC) + 4], "little")
    header = json.loads(data[len(MAGIC) + 4 : len(MAGIC) + 4 + length])
    if field == "profile":
        header["profile"] = value
    else:
        header["spec"][f"edgedepth.{field}"] = json.dumps(value)
    encoded = json.dumps(header).encode()
    path.write_bytes(MAGIC + len(encoded).to_bytes(4, "little") + encoded + data[len(MAGIC) + 4 + length :])
    with pytest.raises(ModelLoadError, match=match):
        read_engine(path, verify=False)
