"""ONNX Runtime backend: ``create_session`` loads, ``OnnxRuntimeBackend`` runs.

``InferenceSession.run`` is thread-safe, so one backend instance may be shared by many threads; each call
gets its own output arrays.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
from packaging.version import Version

from ..artifact import ModelSpec
from ..errors import BackendUnavailableError, InputError, ModelLoadError, choices
from .base import BackendKind, BackendOptions, ClosingRunner, output_names, validate_batch

if TYPE_CHECKING:
    import onnxruntime as ort

MIN_VERSION = Version("1.17")
INSTALL = "pip install onnxruntime"
CPU = "CPUExecutionProvider"
CUDA_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")  # in ORT's priority order
DEVICES = ("cpu", "cuda")


def _import_ort() -> ModuleType:
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailableError(f"onnxruntime cannot be imported ({exc}); {INSTALL}") from None
    return onnxruntime


def probe() -> tuple[bool, str]:
    """Availability of this backend: a recent enough onnxruntime and its execution providers."""
    ort = _import_ort()
    version = Version(importlib.metadata.version("onnxruntime"))
    if version < MIN_VERSION:
        return False, f"onnxruntime {version} is older than {MIN_VERSION} (pip install -U onnxruntime)"
    return True, f"onnxruntime {version}, providers: {', '.join(ort.get_available_providers())}"


def select_providers(options: BackendOptions, available: list[str]) -> list[str]:
    """Providers for a session: explicit ones, else CPU plus the CUDA/TensorRT providers for device='cuda'."""
    device = options.device.lower()
    if device not in DEVICES:
        raise InputError(
            f"device={options.device!r} is not valid for onnxruntime; choose one of {choices(DEVICES)}"
        )
    if options.providers is not None:
        requested = list(options.providers)
        missing = [p for p in requested if p not in available]
    elif device == "cuda":
        requested = [p for p in CUDA_PROVIDERS if p in available] + [CPU]
        missing = [] if "CUDAExecutionProvider" in available else ["CUDAExecutionProvider"]
    else:
        requested, missing = [CPU], []
    if missing:
        raise BackendUnavailableError(
            f"onnxruntime execution provider(s) {choices(missing)} requested but not available; available "
            f"providers: {choices(available)} (for CUDA: pip install onnxruntime-gpu)"
        )
    return requested


def create_session(path: str | Path, options: BackendOptions) -> ort.InferenceSession:
    """Load an ONNX file into an InferenceSession (graph optimisation ALL); a bad file raises ModelLoadError."""
    ort = _import_ort()
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist")
    providers = select_providers(options, ort.get_available_providers())
    session_options = ort.SessionOptions()
    session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session_options.intra_op_num_threads = options.threads or 0  # 0 = onnxruntime's default
    try:
        return ort.InferenceSession(str(path), sess_options=session_options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own pybind exception types for bad files
        raise ModelLoadError(f"{path}: onnxruntime cannot load it as an ONNX model: {exc}") from None


class OnnxRuntimeBackend(ClosingRunner):
    """Runs a loaded session; the outputs named by the spec come back as float32 arrays."""

    kind = BackendKind.ONNXRUNTIME

    def __init__(self, session: ort.InferenceSession, spec: ModelSpec, source: str = "model") -> None:
        self.spec = spec
        self.source = source
        inputs = {i.name: i for i in session.get_inputs()}
        if spec.input_name not in inputs:
            raise ModelLoadError(
                f"{source}: the spec's input {spec.input_name!r} is not in the model; inputs: {choices(inputs)}"
            )
        self.input_shape = [d if isinstance(d, int) else None for d in inputs[spec.input_name].shape]
        self.output_names = output_names(spec, [o.name for o in session.get_outputs()], source)
        self.providers: list[str] = session.get_providers()
        self._session: ort.InferenceSession | None = session

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run one NCHW float32 batch; safe to call from several threads at once."""
        session = self._session
        if session is None:
            raise BackendUnavailableError(f"{self.source}: this onnxruntime backend is closed")
        batch = validate_batch(batch, self.input_shape, self.source)
        results = session.run(self.output_names, {self.spec.input_name: batch})
        return {
            name: np.asarray(r, dtype=np.float32) for name, r in zip(self.output_names, results, strict=True)
        }

    def close(self) -> None:
        """Release the session (ORT frees it with the last reference)."""
        self._session = None


def load(path: Path, spec: ModelSpec, options: BackendOptions) -> OnnxRuntimeBackend:
    """Registry loader: create the session, then the runner."""
    return OnnxRuntimeBackend(create_session(path, options), spec, source=str(path))
