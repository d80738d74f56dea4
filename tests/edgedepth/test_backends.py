"""Backends against real ONNX Runtime and OpenVINO sessions on a tiny generated model."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import edgedepth
from edgedepth.artifact import ModelSpec, Precision
from edgedepth.backends import (
    AUTO_ORDER,
    BACKENDS,
    Backend,
    BackendKind,
    BackendOptions,
    available_backends,
    backend_status,
    open_backend,
)
from edgedepth.errors import BackendUnavailableError, InputError, ModelLoadError
from edgedepth.model_file import read_onnx_spec
from tests.tiny_models import make_tiny_depth_onnx, tiny_depth_reference, tiny_spec

CPU_KINDS = ("onnxruntime", "openvino")
TRT_INSTALL = "pip install edgedepth[tensorrt] (on Jetson: JetPack's TensorRT"


@pytest.fixture(scope="module")
def spec(tiny_onnx: Path) -> ModelSpec:
    return read_onnx_spec(tiny_onnx)


def _batch(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3, h, w)).astype(np.float32)


@pytest.mark.parametrize("shape", [(1, 32, 32), (2, 40, 24), (2, 16, 64)])
def test_backends_agree_with_numpy_and_each_other(
    tiny_onnx: Path, spec: ModelSpec, shape: tuple[int, ...]
) -> None:
    batch = _batch(*shape)
    reference = tiny_depth_reference(batch)
    outputs = {}
    for kind in CPU_KINDS:
        with open_backend(tiny_onnx, spec, kind)[0] as backend:
            assert isinstance(backend, Backend) and backend.kind == kind
            outputs[kind] = backend.infer(batch)
        assert set(outputs[kind]) == {"inverse_depth", "confidence"}
        for name, ref in reference.items():
            assert outputs[kind][name].dtype == np.float32 and outputs[kind][name].shape == (
                shape[0],
                1,
                *shape[1:],
            )
            np.testing.assert_allclose(outputs[kind][name], ref, atol=1e-4)
    for name in reference:
        np.testing.assert_allclose(outputs["onnxruntime"][name], outputs["openvino"][name], atol=1e-4)


@pytest.mark.parametrize("kind", CPU_KINDS)
def test_one_instance_serves_several_sizes_and_options(tiny_onnx: Path, spec: ModelSpec, kind: str) -> None:
    options = BackendOptions(threads=1, openvino_hint="f32" if kind == "openvino" else None)
    backend, _ = open_backend(tiny_onnx, spec, kind, options)
    for shape in [(1, 24, 48), (2, 32, 32), (1, 8, 8)]:
        batch = _batch(*shape)
        np.testing.assert_allclose(
            backend.infer(batch)["inverse_depth"], tiny_depth_reference(batch)["inverse_depth"], atol=1e-4
        )
    backend.close()


@pytest.mark.parametrize("kind", CPU_KINDS)
def test_fixed_shape_model_rejects_other_sizes_and_bad_input(tmp_path: Path, kind: str) -> None:
    path = make_tiny_depth_onnx(tmp_path / "static.onnx", dynamic=False)
    with open_backend(path, read_onnx_spec(path), kind)[0] as backend:
        assert backend.infer(_batch(1, 32, 32))["confidence"].shape == (1, 1, 32, 32)
        with pytest.raises(InputError, match=r"does not fit the model's input shape \(1, 3, 32, 32\)"):
            backend.infer(_batch(1, 32, 40))
        with pytest.raises(InputError, match="float32"):
            backend.infer(np.zeros((1, 3, 32, 32), np.uint8))
        with pytest.raises(InputError, match="N x 3 x H x W"):
            backend.infer(np.zeros((3, 32, 32), np.float32))


def test_auto_picks_openvino_and_explains_every_kind(tiny_onnx: Path, spec: ModelSpec) -> None:
    backend, reasons = open_backend(tiny_onnx, spec)
    assert backend.kind is BackendKind.OPENVINO
    assert [r.split(":")[0] for r in reasons] == ["tensorrt", "openvino", "onnxruntime"]
    assert ".engine" in reasons[0]
    assert reasons[1].startswith("openvino: chosen: available")
    assert reasons[2].startswith("onnxruntime: not tried")
    backend.close()


def test_auto_order_and_cuda_device(tiny_onnx: Path, spec: ModelSpec) -> None:
    assert AUTO_ORDER == (BackendKind.TENSORRT, BackendKind.OPENVINO, BackendKind.ONNXRUNTIME)
    # device='cuda' is not an OpenVINO device, and this machine's onnxruntime has no CUDA provider.
    with pytest.raises(
        BackendUnavailableError, match=r"CUDAExecutionProvider.*available providers: .*CPUExecutionProvider"
    ):
        open_backend(tiny_onnx, spec, options=BackendOptions(device="cuda"))


def test_tensorrt_is_unavailable_with_the_reason(tiny_onnx: Path, spec: ModelSpec, tmp_path: Path) -> None:
    if backend_status("tensorrt").available:
        pytest.skip("TensorRT is installed here; this test covers machines without it")
    status = backend_status(BackendKind.TENSORRT)
    assert not status.available and TRT_INSTALL in status.reason and ".engine" in status.reason
    assert [s.kind for s in available_backends()] == list(BACKENDS)
    with pytest.raises(BackendUnavailableError, match=r"pip install edgedepth\[tensorrt\]"):
        open_backend(tiny_onnx, spec, "tensorrt")
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"not really an engine")
    with pytest.raises(BackendUnavailableError, match=r"tensorrt: unavailable: .*openvino: skipped"):
        open_backend(engine, spec, "auto")


def test_invalid_kind_and_options_list_the_choices(tiny_onnx: Path, spec: ModelSpec) -> None:
    with pytest.raises(InputError, match="'auto', 'onnxruntime', 'openvino', 'tensorrt'"):
        open_backend(tiny_onnx, spec, "tflite")
    with pytest.raises(InputError, match="threads"):
        BackendOptions(threads=0)
    with pytest.raises(InputError, match="'f32', 'bf16', 'f16'"):
        BackendOptions(openvino_hint="int4")
    with pytest.warns(DeprecationWarning, match="BackendOptions.precision is ignored"):
        BackendOptions(precision=Precision.INT8)
    with pytest.raises(InputError, match="'cpu', 'cuda'"):
        open_backend(tiny_onnx, spec, "onnxruntime", BackendOptions(device="GPU"))


def test_each_backend_describes_itself_once() -> None:
    """One description per backend: files it opens, devices it serves, its default device."""
    assert {k: d.suffixes for k, d in BACKENDS.items()} == {
        BackendKind.ONNXRUNTIME: (".onnx",),
        BackendKind.OPENVINO: (".onnx",),
        BackendKind.TENSORRT: (".engine",),
    }
    trt = BACKENDS[BackendKind.TENSORRT]
    assert (
        trt.device(BackendOptions()) == "cuda:0" and trt.device(BackendOptions(device="cuda:1")) == "cuda:1"
    )
    with pytest.raises(
        InputError, match=r"device='CPU' is not served by tensorrt; choose one of 'cuda', 'gpu'"
    ):
        trt.device(BackendOptions(device="CPU"))  # never silently GPU 0
    assert BACKENDS[BackendKind.OPENVINO].device(BackendOptions()) == "CPU"
    assert BACKENDS[BackendKind.OPENVINO].serves("GPU.1") and not BACKENDS[BackendKind.OPENVINO].serves(
        "cuda"
    )


def test_missing_provider_or_device_lists_what_is_available(tiny_onnx: Path, spec: ModelSpec) -> None:
    options = BackendOptions(providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
    with pytest.raises(
        BackendUnavailableError,
        match=r"'CUDAExecutionProvider'.*available providers: .*'CPUExecutionProvider'",
    ):
        open_backend(tiny_onnx, spec, "onnxruntime", options)
    with pytest.raises(BackendUnavailableError, match=r"device 'NPU7'.*devices present: .*'CPU'"):
        open_backend(tiny_onnx, spec, "openvino", BackendOptions(device="NPU7"))


@pytest.mark.parametrize("kind", [*CPU_KINDS, "auto"])
def test_corrupt_truncated_and_missing_files_raise_model_load_error(
    tiny_onnx: Path, spec: ModelSpec, tmp_path: Path, kind: str
) -> None:
    corrupt = tmp_path / "random.onnx"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    truncated = tmp_path / "truncated.onnx"
    data = tiny_onnx.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    for bad in (corrupt, truncated, tmp_path / "absent.onnx"):
        with pytest.raises(ModelLoadError, match=bad.name):
            open_backend(bad, spec, kind)


@pytest.mark.parametrize("kind", CPU_KINDS)
def test_spec_names_are_checked_and_confidence_is_optional(tmp_path: Path, kind: str) -> None:
    path = make_tiny_depth_onnx(tmp_path / "noconf.onnx", spec=tiny_spec(confidence_name=None))
    with open_backend(path, tiny_spec(), kind)[0] as backend:  # the spec names a confidence the model lacks
        assert list(backend.infer(_batch(1, 16, 16))) == ["inverse_depth"]
    with pytest.raises(ModelLoadError, match=r"input 'rgb' is not in the model; inputs: 'image'"):
        open_backend(path, tiny_spec(input_name="rgb"), kind)
    with pytest.raises(ModelLoadError, match=r"output 'depth' is not in the model; outputs: 'inverse_depth'"):
        open_backend(path, tiny_spec(output_name="depth"), kind)


@pytest.mark.parametrize("kind", CPU_KINDS)
def test_threads_share_one_backend(tiny_onnx: Path, spec: ModelSpec, kind: str) -> None:
    batches = [_batch(1 + i % 2, 16 + 8 * (i % 3), 24 + 8 * (i % 4), seed=i) for i in range(8)]
    with open_backend(tiny_onnx, spec, kind)[0] as backend:
        expected = [backend.infer(b) for b in batches]

        def work(i: int) -> list[dict[str, np.ndarray]]:
            return [backend.infer(batches[i]) for _ in range(20)]

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(work, range(8)))
    for i, runs in enumerate(results):
        for out in runs:
            for name, value in expected[i].items():
                np.testing.assert_allclose(out[name], value, atol=1e-6)


@pytest.mark.parametrize("kind", CPU_KINDS)
def test_context_manager_closes(tiny_onnx: Path, spec: ModelSpec, kind: str) -> None:
    with open_backend(tiny_onnx, spec, kind)[0] as backend:
        backend.infer(_batch(1, 8, 8))
    with pytest.raises(InputError, match="closed"):
        backend.infer(_batch(1, 8, 8))
    backend.close()  # closing twice is harmless


def test_int8_qdq_model_runs_on_both(tiny_onnx: Path, tmp_path: Path) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"image": _batch(1, 32, 32, seed=s)} for s in range(8)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    qdq = tmp_path / "tiny-int8.onnx"
    quantize_static(
        str(tiny_onnx), str(qdq), Reader(), quant_format=QuantFormat.QDQ, weight_type=QuantType.QInt8
    )
    model = onnx.load(str(qdq))
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    int8_spec = tiny_spec(precision=Precision.INT8)
    del model.metadata_props[:]
    for key, value in int8_spec.to_metadata().items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(qdq))

    batch = _batch(2, 24, 40, seed=99)
    reference = tiny_depth_reference(batch)["inverse_depth"]
    spread = float(reference.max() - reference.min())
    for kind in [*CPU_KINDS, "auto"]:
        with open_backend(qdq, read_onnx_spec(qdq), kind)[0] as backend:
            out = backend.infer(batch)["inverse_depth"]
        assert float(np.abs(out - reference).max()) < 0.05 * spread, kind


def test_importing_backends_loads_no_inference_library() -> None:
    code = "import sys, edgedepth.backends; print(sorted({'onnxruntime', 'openvino', 'tensorrt'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_shipped_default_model_agrees_across_backends() -> None:
    path = edgedepth.default_model_path("fp32")
    if not path.is_file():
        pytest.skip(f"the shipped default model {path.name} is not in edgedepth/models yet")
    spec = read_onnx_spec(path)
    batch = _batch(1, *spec.input_size, seed=3)
    outputs = {}
    for kind in CPU_KINDS:
        with open_backend(path, spec, kind)[0] as backend:
            outputs[kind] = backend.infer(batch)
    for name, value in outputs["onnxruntime"].items():
        scale = float(np.abs(value).max()) or 1.0
        assert float(np.abs(outputs["openvino"][name] - value).max()) < 1e-3 * scale, name


@pytest.mark.parametrize("kind", CPU_KINDS)
def test_backend_failures_and_nan_outputs_are_inference_errors_naming_the_file(
    tmp_path: Path, kind: str
) -> None:
    """One place turns a library's exception into InferenceError; NaN or inf outputs are refused too."""
    import onnx
    from onnx import helper, numpy_helper

    from edgedepth.errors import InferenceError

    nan = make_tiny_depth_onnx(tmp_path / "nan.onnx")
    model = onnx.load(str(nan))
    bias = next(i for i in model.graph.initializer if i.name == "conv_b")
    bias.CopyFrom(numpy_helper.from_array(np.full(2, np.nan, np.float32), "conv_b"))
    onnx.save(model, str(nan))
    with (
        open_backend(nan, tiny_spec(), kind)[0] as backend,
        pytest.raises(InferenceError, match=r"nan\.onnx.*NaN"),
    ):
        backend.infer(_batch(1, 16, 16))

    reshaped = make_tiny_depth_onnx(
        tmp_path / "fixed.onnx"
    )  # runs only at 32x32 although its axes are dynamic
    model = onnx.load(str(reshaped))
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    conv.output[0] = "raw"
    model.graph.initializer.append(numpy_helper.from_array(np.array([-1, 2, 32, 32], np.int64), "shape"))
    model.graph.node.insert(1, helper.make_node("Reshape", ["raw", "shape"], ["features"]))
    onnx.save(model, str(reshaped))
    with open_backend(reshaped, tiny_spec(), kind)[0] as backend:
        assert backend.infer(_batch(1, 32, 32))["inverse_depth"].shape == (1, 1, 32, 32)
        with pytest.raises(
            InferenceError, match=rf"fixed\.onnx: {kind} failed on an input of shape \(1, 3, 16, 16\)"
        ):
            backend.infer(_batch(1, 16, 16))


def test_openvinos_precision_hint_follows_the_model_file() -> None:
    """One value per parameter: which file (FP32 or INT8) decides the execution hint; openvino_hint
    overrides it."""
    from edgedepth.backends.openvino import compile_config

    assert compile_config(BackendOptions(), Precision.FP32)["INFERENCE_PRECISION_HINT"] == "f32"
    assert compile_config(BackendOptions(), Precision.INT8)["INFERENCE_PRECISION_HINT"] == "f32"
    assert "INFERENCE_PRECISION_HINT" not in compile_config(BackendOptions(), Precision.FP16)
    assert (
        compile_config(BackendOptions(openvino_hint="bf16"), Precision.FP32)["INFERENCE_PRECISION_HINT"]
        == "bf16"
    )
