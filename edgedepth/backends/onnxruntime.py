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
    device = DESCRIPTION.device(options).lower()
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


class OnnxRuntimeBackend(Backend):
    """Runs a loaded session (safe from several threads at once); outputs come back as float32 arrays."""

    kind = BackendKind.ONNXRUNTIME

    def __init__(self, session: ort.InferenceSession, spec: ModelSpec, source: str = "model") -> None:
        inputs = {i.name: i for i in session.get_inputs()}
        check_input_name(spec, list(inputs), source)
        shape = [d if isinstance(d, int) else None for d in inputs[spec.input_name].shape]
        super().__init__(spec, source, shape)
        self.output_names = output_names(spec, [o.name for o in session.get_outputs()], source)
        self.providers: list[str] = session.get_providers()
        self._session: ort.InferenceSession | None = session

    def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        session = self._session
        if session is None:  # closed by another thread since infer() checked
            raise self.closed_error()
        results = session.run(self.output_names, {self.spec.input_name: batch})
        return {
            name: np.asarray(r, dtype=np.float32) for name, r in zip(self.output_names, results, strict=True)
        }

    def _release(self) -> None:
        self._session = None  # ORT frees the session with its last reference


def load(path: Path, spec: ModelSpec, options: BackendOptions) -> OnnxRuntimeBackend:
    """Registry loader: create the session, then the runner."""
    return OnnxRuntimeBackend(create_session(path, options), spec, source=str(path))


DESCRIPTION = BackendDescription(
    kind=BackendKind.ONNXRUNTIME,
    load=load,
    probe=probe,
    libraries=("onnxruntime",),
    install=INSTALL,
    suffixes=(".onnx",),
    devices=DEVICES,
    default_device="cpu",
)
