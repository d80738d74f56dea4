"""OpenVINO backend: ``compile_model`` loads, ``OpenVinoBackend`` runs.

A compiled model may be shared between threads but an InferRequest may not, so each thread that calls
``infer`` gets its own request (``threading.local``). Dynamic-shape models (the project's export has dynamic
batch, height and width) and INT8 QDQ models compile as they are.
"""

from __future__ import annotations

import importlib.metadata
import threading
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
from packaging.version import Version

from ..artifact import ModelSpec, Precision
from ..errors import BackendUnavailableError, ModelLoadError, choices
from .base import (
    Backend,
    BackendDescription,
    BackendKind,
    BackendOptions,
    check_input_name,
    output_names,
)

if TYPE_CHECKING:
    import openvino as ov

MIN_VERSION = Version("2024.0")
INSTALL = "pip install edgedepth[openvino]"
VIRTUAL_DEVICES = ("AUTO", "HETERO", "MULTI", "BATCH")
# The precision hint used when options.openvino_hint is None; absent = the device's own default. INT8 files
# keep their float parts in f32 too: measured faster than the CPU's default (bf16 where the CPU has it) on an
# AVX-512 CPU without AMX, with no more flicker (docs/quantization.md).
DEFAULT_HINTS: dict[Precision, str] = {Precision.FP32: "f32", Precision.INT8: "f32"}


def _import_ov() -> ModuleType:
    try:
        import openvino
    except ImportError as exc:
        raise BackendUnavailableError(f"openvino cannot be imported ({exc}); {INSTALL}") from None
    return openvino


def _one_line(exc: Exception) -> str:
    """OpenVINO's messages span lines (C++ file positions); fold them into one for error messages."""
    return " ".join(str(exc).split())


def probe() -> tuple[bool, str]:
    """Availability of this backend: a recent enough openvino and at least one device."""
    ov = _import_ov()
    version = Version(importlib.metadata.version("openvino"))
    if version < MIN_VERSION:
        return False, f"openvino {version} is older than {MIN_VERSION} (pip install -U openvino)"
    devices = ov.Core().available_devices
    if not devices:
        return False, f"openvino {version} finds no device"
    return True, f"openvino {version}, devices: {', '.join(devices)}"


def compile_config(options: BackendOptions, precision: Precision = Precision.FP32) -> dict[str, Any]:
    """The compile properties: latency hint, thread count and precision hint: ``openvino_hint`` when set,
    else implied by the model file's ``precision`` (its spec's)."""
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
    if options.threads is not None:
        config["INFERENCE_NUM_THREADS"] = options.threads
    hint = options.openvino_hint or DEFAULT_HINTS.get(precision)
    if hint is not None:
        config["INFERENCE_PRECISION_HINT"] = hint.lower()
    return config


def check_device(core: ov.Core, device: str) -> None:
    """Raise BackendUnavailableError listing the devices present when ``device`` is not one of them."""
    available = list(core.available_devices)
    base = device.upper().split(":")[0].split(".")[0]
    if base in VIRTUAL_DEVICES or device.upper() in available or base in {d.split(".")[0] for d in available}:
        return
    raise BackendUnavailableError(
        f"openvino device {device!r} is not available here; devices present: {choices(available)} "
        f"(or the virtual devices {choices(VIRTUAL_DEVICES)})"
    )


def compile_model(
    path: str | Path, options: BackendOptions, precision: Precision = Precision.FP32
) -> ov.CompiledModel:
    """Read an ONNX/IR file of ``precision`` and compile it for ``options.device``; a bad file raises
    ModelLoadError."""
    ov = _import_ov()
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist")
    core = ov.Core()
    device = DESCRIPTION.device(options)
    check_device(core, device)
    try:
        model = core.read_model(str(path))
    except Exception as exc:  # openvino raises RuntimeError subclasses for unreadable files
        raise ModelLoadError(f"{path}: openvino cannot read it as a model: {_one_line(exc)}") from None
    config = compile_config(options, precision)
    try:
        return core.compile_model(model, device, config)
    except Exception as exc:
        raise ModelLoadError(
            f"{path}: openvino cannot compile it for {device} with {config}: {_one_line(exc)}"
        ) from None


class OpenVinoBackend(Backend):
    """Runs a compiled model with one InferRequest per calling thread; outputs come back as float32."""

    kind = BackendKind.OPENVINO

    def __init__(self, compiled: ov.CompiledModel, spec: ModelSpec, source: str = "model") -> None:
        inputs = {name: port for port in compiled.inputs for name in port.get_names()}
        check_input_name(spec, list(inputs), source)
        shape = inputs[spec.input_name].get_partial_shape()
        dims = [d.get_length() if d.is_static else None for d in shape] if shape.rank.is_static else []
        super().__init__(spec, source, dims)
        outputs = {name: port for port in compiled.outputs for name in port.get_names()}
        self.output_names = output_names(spec, list(outputs), source)
        self._ports = [outputs[name] for name in self.output_names]
        self._compiled: ov.CompiledModel | None = compiled
        self._local = threading.local()

    def _request(self) -> ov.InferRequest:
        compiled = self._compiled
        if compiled is None:  # closed by another thread since infer() checked
            raise self.closed_error()
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = compiled.create_infer_request()
        return request

    def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        request = self._request()  # this thread's
        results = request.infer({self.spec.input_name: batch}, share_inputs=False, share_outputs=False)
        return {
            name: np.asarray(results[port], dtype=np.float32)
            for name, port in zip(self.output_names, self._ports, strict=True)
        }

    def _release(self) -> None:
        """Drop the compiled model and every thread's InferRequest; a call in flight finishes on its own."""
        self._compiled = None
        self._local = threading.local()


def load(path: Path, spec: ModelSpec, options: BackendOptions) -> OpenVinoBackend:
    """Registry loader: compile the model, then the runner."""
    return OpenVinoBackend(compile_model(path, options, spec.precision), spec, source=str(path))


DESCRIPTION = BackendDescription(
    kind=BackendKind.OPENVINO,
    load=load,
    probe=probe,
    libraries=("openvino",),
    install=INSTALL,
    suffixes=(".onnx",),
    devices=("cpu", "gpu", "npu", *(d.lower() for d in VIRTUAL_DEVICES)),
    default_device="CPU",
)
