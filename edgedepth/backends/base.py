"""The Backend protocol, its options, and the registry that picks and opens a backend.

Backends are chosen through ``BACKENDS``, a dict keyed by ``BackendKind`` whose values name the module and
loader function that implement each kind; the module is imported only when that backend is probed or opened.
Optional libraries are probed by import, never installed: a missing one raises ``BackendUnavailableError``
carrying the install command.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

import numpy as np

from ..artifact import ModelSpec, Precision, parse_enum
from ..errors import BackendUnavailableError, InputError, ModelLoadError, choices
from ..preprocess import ResizePlan


class BackendKind(StrEnum):
    AUTO = "auto"
    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"
    TENSORRT = "tensorrt"


OPENVINO_HINTS = ("f32", "bf16", "f16")


@dataclass(frozen=True)
class BackendOptions:
    """How to run a model. ``precision`` is the model file's precision / the execution precision wanted.

    ``device`` is an OpenVINO device name ("CPU", "GPU", "NPU", "AUTO", ...) or, for ONNX Runtime, "cpu" or
    "cuda" (the CUDA execution provider). ``openvino_hint`` sets INFERENCE_PRECISION_HINT; with None the
    backend follows ``precision`` (fp32 -> "f32", so results do not silently turn bf16 on AMX CPUs;
    otherwise the device default). ``cuda_graph`` (TensorRT) captures each input shape's execution in a
    CUDA graph and replays it.
    """

    precision: Precision = Precision.FP32
    threads: int | None = None
    device: str = "CPU"
    providers: tuple[str, ...] | None = None
    openvino_hint: str | None = None
    cuda_graph: bool = False

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "precision", parse_enum(Precision, self.precision, "precision"))
        except ValueError as exc:
            raise InputError(str(exc)) from None
        if self.threads is not None and (isinstance(self.threads, bool) or self.threads < 1):
            raise InputError(f"threads={self.threads!r} is not valid; use a positive integer or None")
        if not self.device:
            raise InputError("device must be a non-empty string such as 'CPU' or 'cuda'")
        if self.openvino_hint is not None and self.openvino_hint.lower() not in OPENVINO_HINTS:
            raise InputError(
                f"openvino_hint={self.openvino_hint!r} is not valid; choose one of {choices(OPENVINO_HINTS)} or None"
            )
        if self.providers is not None:
            object.__setattr__(self, "providers", tuple(self.providers))


@runtime_checkable
class Backend(Protocol):
    """A loaded model: NCHW float32 batch in, ``{output_name: ..., confidence_name: ...}`` float32 out."""

    kind: BackendKind
    spec: ModelSpec

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


@runtime_checkable
class FrameRunner(Protocol):
    """A backend that also preprocesses on its device: BGR uint8 frames in (TensorRT's fused CUDA kernel)."""

    def infer_frames(
        self, frames: Sequence[np.ndarray], input_hw: tuple[int, int]
    ) -> tuple[dict[str, np.ndarray], list[ResizePlan]]: ...


class ClosingRunner:
    """Context-manager behaviour shared by the backend runners: leaving the block calls ``close()``."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def validate_batch(batch: object, model_shape: Sequence[int | None], source: str) -> np.ndarray:
    """Check an N x 3 x H x W float batch (against the model's fixed dims, None = dynamic); return it float32."""
    if not isinstance(batch, np.ndarray) or batch.ndim != 4 or batch.shape[1] != 3 or 0 in batch.shape:
        got = (
            f"{batch.dtype} array of shape {batch.shape}"
            if isinstance(batch, np.ndarray)
            else type(batch).__name__
        )
        raise InputError(f"{source}: infer expects an N x 3 x H x W float32 array, got {got}")
    if not np.issubdtype(batch.dtype, np.floating):
        raise InputError(
            f"{source}: infer expects float32 input, got {batch.dtype}; preprocess images with edgedepth.preprocess"
        )
    expected = tuple("?" if d is None else d for d in model_shape)
    if any(want is not None and got != want for got, want in zip(batch.shape, model_shape, strict=False)):
        raise InputError(
            f"{source}: input shape {batch.shape} does not fit the model's input shape {expected}"
        )
    return np.ascontiguousarray(batch, dtype=np.float32)


def output_names(spec: ModelSpec, model_outputs: Sequence[str], source: str) -> list[str]:
    """The spec's outputs present in the model: the main one (required) and the confidence (when present)."""
    if spec.output_name not in model_outputs:
        raise ModelLoadError(
            f"{source}: the spec's output {spec.output_name!r} is not in the model; outputs: {choices(model_outputs)}"
        )
    names = [spec.output_name]
    if spec.confidence_name is not None and spec.confidence_name in model_outputs:
        names.append(spec.confidence_name)
    return names


Loader = Callable[[Path, ModelSpec, BackendOptions], Backend]


@dataclass(frozen=True)
class BackendStatus:
    """Whether a backend can be used here, and why (or why not)."""

    kind: BackendKind
    available: bool
    reason: str


# kind -> "module:loader". The module is imported lazily; tensorrt's arrives with the TensorRT work.
BACKENDS: dict[BackendKind, str] = {
    BackendKind.ONNXRUNTIME: "edgedepth.backends.onnxruntime:load",
    BackendKind.OPENVINO: "edgedepth.backends.openvino:load",
    BackendKind.TENSORRT: "edgedepth.backends.tensorrt:load",
}

# kind -> (libraries the backend imports, how to get them).
REQUIREMENTS: dict[BackendKind, tuple[tuple[str, ...], str]] = {
    BackendKind.ONNXRUNTIME: (("onnxruntime",), "pip install onnxruntime"),
    BackendKind.OPENVINO: (("openvino",), "pip install edgedepth[openvino]"),
    BackendKind.TENSORRT: (
        ("tensorrt", "pycuda"),
        "pip install edgedepth[tensorrt] (on Jetson: JetPack's TensorRT)",
    ),
}

# The one place auto's order lives: first available wins. TensorRT is only considered for .engine files.
AUTO_PREFERENCE: dict[Precision, tuple[BackendKind, ...]] = {
    Precision.FP32: (BackendKind.TENSORRT, BackendKind.OPENVINO, BackendKind.ONNXRUNTIME),
    Precision.FP16: (BackendKind.TENSORRT, BackendKind.OPENVINO, BackendKind.ONNXRUNTIME),
    # INT8: OpenVINO runs the QDQ model faster than ONNX Runtime, which runs it slower than its own FP32.
    # `python -m benchmarks` (efficientdepth-s, 256x256, batch 1, 2-core AVX2 EPYC, p50 of two runs): int8
    # 15.0-22.8 ms openvino vs 27.5-32.2 ms onnxruntime (fp32: 17.3-23.0 / 17.6-19.1 ms). ONNX Runtime stays
    # as the fallback for installs without openvino.
    Precision.INT8: (BackendKind.TENSORRT, BackendKind.OPENVINO, BackendKind.ONNXRUNTIME),
}

ENGINE_SUFFIX = ".engine"
_PRECISION_RANK = {Precision.FP32: 0, Precision.FP16: 1, Precision.INT8: 2}


def parse_backend_kind(kind: BackendKind | str) -> BackendKind:
    """A BackendKind from a member or string; an unknown name raises InputError listing the choices."""
    try:
        return parse_enum(BackendKind, kind, "backend")
    except ValueError as exc:
        raise InputError(str(exc)) from None


def is_installed(lib: str) -> bool:
    """Whether ``lib`` is a real package: a folder of type stubs alone (e.g. tensorrt-stubs) is a namespace
    package without an origin, and does not count."""
    spec = importlib.util.find_spec(lib)
    return spec is not None and spec.origin is not None


def backend_status(kind: BackendKind | str) -> BackendStatus:
    """Probe one backend: its libraries (find_spec, then import), its edgedepth module, then its hardware."""
    kind = parse_backend_kind(kind)
    if kind is BackendKind.AUTO:
        raise InputError(f"backend_status needs a concrete backend; choose one of {choices(BACKENDS)}")
    libraries, install = REQUIREMENTS[kind]
    needs_engine = f" It runs TensorRT {ENGINE_SUFFIX} files." if kind is BackendKind.TENSORRT else ""
    for lib in libraries:
        if not is_installed(lib):
            return BackendStatus(kind, False, f"{lib} is not installed ({install}).{needs_engine}")
        try:
            importlib.import_module(lib)
        except Exception as exc:  # a broken install (missing shared library, ABI mismatch, ...)
            return BackendStatus(kind, False, f"{lib} is installed but fails to import: {exc} ({install})")
    module_name = BACKENDS[kind].partition(":")[0]
    if importlib.util.find_spec(module_name) is None:
        return BackendStatus(kind, False, f"{module_name} is not in this edgedepth version.{needs_engine}")
    available, reason = importlib.import_module(module_name).probe()
    return BackendStatus(kind, available, reason)


def available_backends() -> list[BackendStatus]:
    """Status of every registered backend, for ``edgedepth info``."""
    return [backend_status(kind) for kind in BACKENDS]


def auto_precision(spec: ModelSpec, options: BackendOptions) -> Precision:
    """The precision auto plans for: the lower of the file's (spec) and the requested (options) one."""
    return max(spec.precision, options.precision, key=_PRECISION_RANK.__getitem__)


def _skip_reason(kind: BackendKind, path: Path, options: BackendOptions) -> str | None:
    """Why auto must pass over ``kind`` for this file and device whatever is installed, or None."""
    is_engine = path.suffix.lower() == ENGINE_SUFFIX
    if kind is BackendKind.TENSORRT and not is_engine:
        libraries, install = REQUIREMENTS[kind]
        missing = [lib for lib in libraries if not is_installed(lib)]
        note = f" (also: {', '.join(missing)} not installed; {install})" if missing else ""
        return f"skipped: it runs {ENGINE_SUFFIX} files and {path.name} is not one{note}"
    if kind is not BackendKind.TENSORRT and is_engine:
        return f"skipped: {path.name} is a TensorRT engine"
    if kind is BackendKind.OPENVINO and options.device.lower() == "cuda":
        return "skipped: device='cuda' is served by onnxruntime's CUDA provider"
    if kind is BackendKind.ONNXRUNTIME and options.device.lower() not in ("cpu", "cuda"):
        return f"skipped: device={options.device!r} is an OpenVINO device"
    return None


def _load(kind: BackendKind, path: Path, spec: ModelSpec, options: BackendOptions) -> Backend:
    module_name, _, func = BACKENDS[kind].partition(":")
    loader: Loader = getattr(importlib.import_module(module_name), func)
    return loader(path, spec, options)


def open_backend(
    model_path: str | Path,
    spec: ModelSpec,
    kind: BackendKind | str = BackendKind.AUTO,
    options: BackendOptions | None = None,
) -> tuple[Backend, list[str]]:
    """Open ``model_path`` on ``kind``, or for "auto" on the first backend in ``AUTO_PREFERENCE`` that can.

    Returns the backend and one reason per backend considered, e.g.
    ``["tensorrt: skipped: ...", "openvino: chosen: ...", "onnxruntime: not tried: ..."]``.
    """
    kind, options, path = parse_backend_kind(kind), options or BackendOptions(), Path(model_path)
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist")
    if kind is not BackendKind.AUTO:
        status = backend_status(kind)
        if not status.available:
            raise BackendUnavailableError(f"backend {kind.value!r} cannot be used: {status.reason}")
        if (kind is BackendKind.TENSORRT) != (path.suffix.lower() == ENGINE_SUFFIX):
            raise InputError(
                f"backend {kind.value!r} cannot open {path}: {ENGINE_SUFFIX} files are for tensorrt only"
            )
        return _load(kind, path, spec, options), [f"{kind}: chosen: requested explicitly ({status.reason})"]

    precision = auto_precision(spec, options)
    reasons: list[str] = []
    backend: Backend | None = None
    failure: Exception | None = None
    for candidate in AUTO_PREFERENCE[precision]:
        if backend is not None:
            reasons.append(
                f"{candidate}: not tried: {backend.kind} comes first in auto's order for {precision}"
            )
            continue
        skip = _skip_reason(candidate, path, options)
        if skip is not None:
            reasons.append(f"{candidate}: {skip}")
            continue
        status = backend_status(candidate)
        if not status.available:
            reasons.append(f"{candidate}: unavailable: {status.reason}")
            continue
        try:
            backend = _load(candidate, path, spec, options)
            reasons.append(
                f"{candidate}: chosen: available ({status.reason}), first in auto's order for {precision}"
            )
        except (BackendUnavailableError, ModelLoadError) as exc:  # the next backend may still manage
            failure = failure if isinstance(failure, ModelLoadError) else exc
            reasons.append(f"{candidate}: failed: {exc}")
    if backend is None:
        error = ModelLoadError if isinstance(failure, ModelLoadError) else BackendUnavailableError
        raise error(f"no backend could open {path}: " + "; ".join(reasons)) from failure
    return backend, reasons
