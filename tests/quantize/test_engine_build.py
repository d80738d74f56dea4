"""The engine builder's GPU-free parts: profile derivation, the bound calibration cache, input checks, CLI.

The build itself needs TensorRT and a GPU (tests/edgedepth/test_tensorrt_gpu.py); here it is checked that it refuses
cleanly, naming the install command, when they are absent.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgedepth import default_model_path
from edgedepth.artifact import Precision
from edgedepth.backends import BackendKind, backend_status
from edgedepth.engine_file import BuildFlags
from edgedepth.errors import BackendUnavailableError, InputError
from edgedepth_quantize.calibration_cache import (
    calibration_binding,
    read_calibration_cache,
    write_calibration_cache,
)
from edgedepth_quantize.engine import build_engine, derive_profile, is_qdq_model, parse_shape
from edgedepth_quantize.errors import CalibrationError
from tests.tiny_models import tiny_spec

TRT_AVAILABLE = backend_status(BackendKind.TENSORRT).available


@pytest.mark.parametrize(
    ("text", "shape"),
    [("256x320", (1, 3, 256, 320)), ("4x256x320", (4, 3, 256, 320)), ("2x3x64x64", (2, 3, 64, 64))],
)
def test_parse_shape(text: str, shape: tuple[int, ...]) -> None:
    assert parse_shape(text) == shape


@pytest.mark.parametrize("text", ["256", "1x1x64x64", "axb", "0x64x64", "1x2x3x4x5"])
def test_parse_shape_rejects(text: str) -> None:
    with pytest.raises(InputError, match=text):
        parse_shape(text)


def test_dynamic_profile_defaults_cover_every_aspect_the_runtime_produces() -> None:
    from edgedepth.preprocess import model_input_hw

    spec = tiny_spec(dynamic=True, input_size=(256, 256), size_multiple=32)
    profile = derive_profile(spec)
    assert profile.opt == profile.max == (1, 3, 256, 256)
    assert profile.min == (1, 3, 64, 64)
    for src_hw in [(480, 640), (1080, 1920), (640, 480), (200, 800), (720, 720)]:
        h, w = model_input_hw(src_hw, spec, 256)
        assert profile.contains((1, 3, h, w)), (src_hw, h, w)


def test_explicit_profile_and_batch() -> None:
    spec = tiny_spec(dynamic=True, input_size=(256, 256))
    profile = derive_profile(spec, (1, 3, 128, 128), (4, 3, 256, 256), (8, 3, 384, 512))
    assert profile.describe() == "1x3x128x128 .. 4x3x256x256 .. 8x3x384x512"
    # max defaults to at least opt's batch and the spec's size
    assert derive_profile(spec, None, (4, 3, 192, 256)).max == (4, 3, 256, 256)


def test_profile_errors_name_the_option() -> None:
    dynamic = tiny_spec(dynamic=True, input_size=(256, 256), size_multiple=32)
    with pytest.raises(InputError, match=r"--max-shape 1x3x250x256: .* multiples of 32"):
        derive_profile(dynamic, None, None, (1, 3, 250, 256))
    with pytest.raises(InputError, match="min 256 <= opt 128"):
        derive_profile(dynamic, (1, 3, 256, 256), (1, 3, 128, 128), (1, 3, 256, 256))
    static = tiny_spec(dynamic=False, input_size=(256, 256))
    assert derive_profile(static).min == (1, 3, 256, 256)
    with pytest.raises(InputError, match="fixed input of 256x256"):
        derive_profile(static, None, (1, 3, 128, 128))


def binding(**changes: object) -> dict:
    spec = tiny_spec(**{k: v for k, v in changes.items() if k in ("mean", "std", "resize_mode")})
    return calibration_binding(
        str(changes.get("sha", "a" * 64)),
        str(changes.get("trt", "10.3.0.30")),
        spec,
        changes.get("hw", (256, 256)),  # type: ignore[arg-type]
    )


def test_calibration_cache_round_trips_when_bound_to_the_same_things(tmp_path: Path) -> None:
    path = tmp_path / "model.calibration-cache"
    assert read_calibration_cache(path, binding()) is None  # none yet: calibrate
    write_calibration_cache(path, binding(), b"TRT-8601-EntropyCalibration2\ninput: 3c010a14\n")
    assert read_calibration_cache(path, binding()) == b"TRT-8601-EntropyCalibration2\ninput: 3c010a14\n"


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"sha": "b" * 64}, "onnx_sha256"),
        ({"trt": "10.4.0.26"}, "tensorrt_version"),
        ({"mean": (0.4, 0.4, 0.4)}, "preprocessing mean"),
        ({"resize_mode": "stretch"}, "preprocessing resize_mode"),
        ({"hw": (192, 256)}, "preprocessing input_hw"),
    ],
)
def test_calibration_cache_for_anything_else_is_refused(tmp_path: Path, changes: dict, named: str) -> None:
    path = tmp_path / "model.calibration-cache"
    write_calibration_cache(path, binding(), b"scales")
    with pytest.raises(CalibrationError, match=named) as info:
        read_calibration_cache(path, binding(**changes))
    assert "not reused" in str(info.value) and str(path) in str(info.value)


def test_a_raw_tensorrt_cache_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "raw.cache"
    path.write_bytes(b"TRT-100300-EntropyCalibration2\n")  # no binding: cannot prove what it was made for
    with pytest.raises(CalibrationError, match="not an edgedepth calibration cache"):
        read_calibration_cache(path, binding())


def test_qdq_detection_on_the_shipped_models() -> None:
    assert is_qdq_model(default_model_path(Precision.INT8))
    assert not is_qdq_model(default_model_path(Precision.FP32))


def test_build_refuses_bad_options_before_touching_tensorrt(tmp_path: Path) -> None:
    fp32, int8 = default_model_path(Precision.FP32), default_model_path(Precision.INT8)
    with pytest.raises(InputError, match="--dla-core needs --precision fp16 or int8"):
        build_engine(fp32, tmp_path / "m.engine", "fp32", flags=BuildFlags(dla_core=0))
    with pytest.raises(InputError, match=r"QDQ .* --precision int8"):
        build_engine(int8, tmp_path / "m.engine", "fp16")
    with pytest.raises(InputError, match="precision='int4'"):
        build_engine(fp32, tmp_path / "m.engine", "int4")
    with pytest.raises(InputError, match="multiples of 32"):
        build_engine(fp32, tmp_path / "m.engine", "fp16", (None, (1, 3, 100, 100), None))
    assert not (tmp_path / "m.engine").exists()


@pytest.mark.skipif(
    TRT_AVAILABLE, reason="TensorRT is usable here; tests/edgedepth/test_tensorrt_gpu.py builds engines"
)
def test_build_without_tensorrt_names_the_install(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError, match="edgedepth\\[tensorrt\\]"):
        build_engine(default_model_path(Precision.FP32), tmp_path / "m.engine", "fp16")
    out = subprocess.run(
        [sys.executable, "-m", "edgedepth.cli", "build-engine", str(default_model_path(Precision.FP32))],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 2 and "tensorrt is not installed" in out.stderr
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_build_engine_is_an_edgedepth_subcommand() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "edgedepth.cli", "build-engine", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0
    for option in (
        "--min-shape",
        "--calibration-cache",
        "--dla-core",
        "--version-compatible",
        "--timing-cache",
    ):
        assert option in out.stdout
