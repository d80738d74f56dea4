"""What every backend shares: its kind, its options, its description, and the runner base class.

Each backend module (onnxruntime, openvino, tensorrt) exports one :class:`BackendDescription`: its loader,
probe, the libraries it needs and how to install them, the model files it opens and the devices it serves.
``registry`` collects them and picks and opens backends. Backend modules import their inference library
only inside functions, so describing a backend loads nothing heavy.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Protocol, Self, runtime_checkable

import numpy as np

from ..artifact import ModelSpec, Precision
from ..errors import EdgeDepthError, InferenceError, InputError, ModelLoadError, choices
from ..preprocess import ResizePlan


class BackendKind(StrEnum):
    AUTO = "auto"
    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"
    TENSORRT = "tensorrt"


OPENVINO_HINTS = ("f32", "bf16", "f16")


@dataclass(frozen=True)
class BackendOptions:
    """How to run a model. What precision a model computes in is its file's (the spec's ``precision``).

    ``device``: None for the backend's default (ONNX Runtime "cpu", OpenVINO "CPU", TensorRT "cuda:0"); an
    OpenVINO device name ("CPU", "GPU", "NPU", "AUTO", ...); for ONNX Runtime "cpu" or "cuda" (the CUDA
    execution provider); for TensorRT "cuda" or "cuda:N". A device a backend does not serve is refused.
    ``openvino_hint`` sets INFERENCE_PRECISION_HINT; with None the backend follows the file's precision (fp32
    and int8 -> "f32", so float parts do not silently turn bf16 on CPUs that have it; otherwise the device
    default). ``cuda_graph``
    (TensorRT) captures each input shape's execution in a CUDA graph and replays it. ``precision`` is
    deprecated and ignored: it used to stand for both the file and the execution hint.
    """

    precision: Precision | None = None
    threads: int | None = None
    device: str | None = None
    providers: tuple[str, ...] | None = None
    openvino_hint: str | None = None
    cuda_graph: bool = False

    def __post_init__(self) -> None:
        if self.precision is not None:
            import warnings

            warnings.warn(
                "BackendOptions.precision is ignored: a model's precision is its file's; set openvino_hint "
                "for OpenVINO's execution precision",
                DeprecationWarning,
                stacklevel=3,
            )
        if self.threads is not None and (isinstance(self.threads, bool) or self.threads < 1):
            raise InputError(f"threads={self.threads!r} is not valid; use a positive integer or None")
        if self.device is not None and (not isinstance(self.device, str) or not self.device.strip()):
            raise InputError(
                f"device={self.device!r} is not valid; use None or a name such as 'CPU' or 'cuda'"
            )
        if self.openvino_hint is not None and self.openvino_hint.lower() not in OPENVINO_HINTS:
            raise InputError(
                f"openvino_hint={self.openvino_hint!r} is not valid; choose one of {choices(OPENVINO_HINTS)} or None"
            )
        if self.providers is not None:
            object.__setattr__(self, "providers", tuple(self.providers))


@runtime_checkable
class FrameRunner(Protocol):
    """A backend that also preprocesses on its device: BGR uint8 frames in (TensorRT's fused CUDA kernel)."""

    def infer_frames(
        self, frames: Sequence[np.ndarray], input_hw: tuple[int, int]
    ) -> tuple[dict[str, np.ndarray], list[ResizePlan]]: ...


class Backend(ABC):
    """A loaded model, and the base of every backend (Polygraphy's runners in spirit): one ``infer`` that checks the backend is
    open and the batch is an N x 3 x H x W float array fitting the model, then calls ``_infer``; one
    ``close`` that releases once (``_release``); and the context manager. A closed backend raises
    InputError on every backend.
    """

    kind: ClassVar[BackendKind]

    def __init__(self, spec: ModelSpec, source: str, input_shape: Sequence[int | None]) -> None:
        self.spec, self.source, self.input_shape = spec, source, list(input_shape)
        self._closed = False
        self._close_lock = threading.Lock()

    @property
    def closed(self) -> bool:
        return self._closed

    def closed_error(self) -> InputError:
        return InputError(f"{self.source}: this {self.kind} backend is closed")

    def check_open(self) -> None:
        if self._closed:
            raise self.closed_error()

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run one NCHW float32 batch; ``{output_name: ..., confidence_name: ...}`` as float32 arrays.

        The one place where a backend library's exceptions become edgedepth's: InferenceError naming the
        model file (InputError when the backend was closed meanwhile), and NaN or inf in the outputs too.
        """
        self.check_open()
        batch = validate_batch(batch, self.input_shape, self.source)
        try:
            outputs = self._infer(batch)
        except EdgeDepthError:
            raise
        except Exception as exc:
            if self._closed:
                raise self.closed_error() from None
            message = " ".join(str(exc).split())[:300]
            raise InferenceError(
                f"{self.source}: {self.kind} failed on an input of shape {batch.shape}: {type(exc).__name__}: {message}"
            ) from exc
        for name, value in outputs.items():
            if not np.isfinite(value).all():
                raise InferenceError(f"{self.source}: output {name!r} holds NaN or inf (a corrupt model?)")
        return outputs

    @abstractmethod
    def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]: ...

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._release()

    @abstractmethod
    def _release(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def check_input_name(spec: ModelSpec, model_inputs: Sequence[str], source: str) -> None:
    """The spec's input must be the model's (only) image input."""
    if spec.input_name not in model_inputs:
        raise ModelLoadError(
            f"{source}: the spec's input {spec.input_name!r} is not in the model; inputs: {choices(model_inputs)}"
        )


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
class BackendDescription:
    """Everything the registry knows of a backend, exported by its module as ``DESCRIPTION``.

    ``load`` opens a model file; ``probe`` says whether the backend works here and why (its libraries are
    importable by then). ``suffixes``: the model files it opens. ``devices``: the device names it serves,
    compared without case, index (``cuda:1``, ``NPU7``) or sub-device (``GPU.1``); ``default_device`` when none is
    asked for.
    """

    kind: BackendKind
    load: Loader
    probe: Callable[[], tuple[bool, str]]
    libraries: tuple[str, ...]
    install: str
    suffixes: tuple[str, ...]
    devices: tuple[str, ...]
    default_device: str

    def serves(self, device: str | None) -> bool:
        return device is None or re.split(r"[.:0-9]", device.lower(), maxsplit=1)[0] in self.devices

    def device(self, options: BackendOptions) -> str:
        """The device to open on: the one asked for (refused with the choices when not served), or the default."""
        if options.device is None:
            return self.default_device
        if not self.serves(options.device):
            raise InputError(
                f"device={options.device!r} is not served by {self.kind}; choose one of {choices(self.devices)}"
            )
        return options.device


@dataclass(frozen=True)
class BackendStatus:
    """Whether a backend can be used here, and why (or why not)."""

    kind: BackendKind
    available: bool
    reason: str
