"""DepthEstimator: the facade robots embed.

    with DepthEstimator() as est:                       # the embedded default model
        result = est.predict("photo.jpg")               # result.inverse_depth, .confidence, .colorize()
        for item in est.stream("rtsp://..."):           # item.frame, item.result; capture, inference
                                                        # and your loop overlap
            ...

Thread safety: ``predict`` and ``predict_batch`` may be called from several threads sharing one
estimator; the backends are thread-safe (ONNX Runtime sessions are; OpenVINO uses one infer request per
thread) and the estimator keeps no per-call state outside the call.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .artifact import Interpolation, ModelSpec, Precision, parse_enum
from .backends.base import Backend, BackendKind, BackendOptions, FrameRunner
from .backends.registry import open_backend
from .errors import InputError, ModelLoadError
from .model_file import read_spec
from .predictor import InputPolicy, Predictor
from .preprocess import ResizePlan
from .result import DepthResult
from .stream import Stream

MODEL_SUFFIXES = (".onnx", ".engine")


def resolve_model_path(model: str | Path | None, precision: Precision) -> Path:
    """``None`` means the embedded default for ``precision``; otherwise an existing .onnx or .engine file."""
    if model is None:
        from .embedded import default_model_path

        return default_model_path(precision)
    path = Path(model)
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise ModelLoadError(
            f"model {path}: unsupported file type {path.suffix!r}; use one of {', '.join(MODEL_SUFFIXES)}"
        )
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist")
    return path


class DepthEstimator:
    """Load a model once; predict on images, batches and streams.

    ``model``: None (the embedded default), or a path to ``.onnx`` / ``.engine``. ``precision`` picks the
    embedded model's file: "auto" (default) takes INT8 on OpenVINO where the CPU has VNNI or AMX and the INT8
    model passed its accuracy gate, FP32 otherwise (``backend_reasons`` says why). ``backend``: "auto",
    "onnxruntime", "openvino" or "tensorrt". ``spec``: pass a ModelSpec to load a third-party ONNX model
    that carries no edgedepth metadata. ``input_size`` (h, w) fixes the model input for dynamic-shape
    models; by default they keep the image's aspect at ``long_side`` pixels (the spec's longer side).
    ``cuda_preprocess`` (TensorRT) runs preprocessing as one fused CUDA kernel. ``verify_sha256`` refuses a
    model file whose sha256 differs (the embedded model is always checked). Other keyword arguments are
    :class:`BackendOptions` (e.g. ``cuda_graph=True``, ``device="cuda:1"``).
    """

    def __init__(
        self,
        model: str | Path | None = None,
        backend: str | BackendKind = "auto",
        precision: str | Precision = "auto",
        threads: int | None = None,
        spec: ModelSpec | None = None,
        input_size: tuple[int, int] | None = None,
        long_side: int | None = None,
        max_pixels: int | None = None,
        cuda_preprocess: bool = True,
        verify_sha256: str | None = None,
        **backend_options: Any,
    ) -> None:
        why = ""
        if precision == "auto" and model is None:  # the embedded model: INT8 where it is faster and gated
            from .embedded import auto_precision

            chosen, why = auto_precision(str(getattr(backend, "value", backend)))
            if chosen is Precision.INT8 and backend == "auto":
                backend = "openvino"  # the backend INT8 was chosen for
            precision = chosen
        try:
            self.precision: Precision = (
                Precision.FP32 if precision == "auto" else parse_enum(Precision, precision, "precision")
            )
        except ValueError as exc:
            raise InputError(f"{exc} (or 'auto')") from None
        self.model_path = resolve_model_path(model, self.precision)
        if verify_sha256 is not None:
            from .embedded import verify_sha256 as check

            check(self.model_path, verify_sha256)
        if spec is None:  # an engine carries its spec in its header, readable without TensorRT
            spec = read_spec(self.model_path)
        options = BackendOptions(threads=threads, **backend_options)
        self._backend, self.backend_reasons = open_backend(self.model_path, spec, backend, options)
        self.spec: ModelSpec = self._backend.spec
        if model is not None:
            self.precision = self.spec.precision  # a file given by path is what it is
        if why:
            self.backend_reasons = [f"precision auto -> {self.precision.value}: {why}", *self.backend_reasons]
        policy = InputPolicy(self.spec, input_size, long_side, max_pixels)
        self.input_size, self.long_side, self.max_pixels = input_size, policy.long_side, max_pixels
        # TensorRT: predict() and stream() preprocess with the fused CUDA kernel, writing the engine's input.
        frame_runner = (
            self._backend
            if cuda_preprocess
            and isinstance(self._backend, FrameRunner)
            and self.spec.interpolation is Interpolation.LINEAR  # the kernel is bilinear
            else None
        )
        self._predictor = Predictor(self._backend, policy, frame_runner)
        self._closed = False
        self._lock = threading.Lock()

    # -- properties -------------------------------------------------------------------------------------
    @property
    def backend(self) -> Backend:
        """The loaded backend: ``infer(batch)`` on preprocessed input, and e.g. ``header`` for TensorRT."""
        return self._backend

    @property
    def backend_name(self) -> str:
        return str(self._backend.kind)

    def input_hw(self, src_hw: tuple[int, int]) -> tuple[int, int]:
        """The model input size used for an image of ``src_hw``."""
        return self._predictor.policy.input_hw(src_hw)

    # -- prediction -------------------------------------------------------------------------------------
    def prepare(self, image: np.ndarray | str | Path) -> tuple[np.ndarray, np.ndarray, ResizePlan]:
        """Validate and convert an image, then preprocess it: (BGR frame, model input, plan)."""
        return self._predictor.prepare(image)

    def predict(self, image: np.ndarray | str | Path) -> DepthResult:
        """Inverse depth and confidence for one image (ndarray in BGR by default, or a path)."""
        self._check_open()
        return self._predictor.predict(image)

    def predict_batch(self, images: Sequence[np.ndarray | str | Path]) -> list[DepthResult]:
        """Predict several images; those sharing an input size run as one batch when the model allows it."""
        self._check_open()
        return self._predictor.run_many([self._predictor.stage(img) for img in images])

    def stream(self, source: Any, **options: Any) -> Stream:
        """Depth for a camera, file, folder, URL or pipeline (see VideoSource), or a list of them: an iterator
        of :class:`~edgedepth.stream.StreamItem` (``item.frame``, ``item.result``, ``item.index`` of the
        source, ``item.captured_at``).

        Capture, inference and the caller's loop body run in separate threads joined by bounded queues; with
        several sources, the ready frames of all of them run as one batch per tick (``batch=False``: one by
        one). Statistics, per source too, are on the returned stream's ``stats`` during and after the loop.
        Options: see :class:`~edgedepth.stream.Stream`.
        """
        self._check_open()
        return Stream(self._predictor, source, **options)

    # -- lifetime ---------------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise InputError("this DepthEstimator is closed")

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._backend.close()

    def __enter__(self) -> DepthEstimator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DepthEstimator({self.spec.name}, {self.model_path.name}, backend={self.backend_name})"
