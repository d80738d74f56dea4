"""DepthEstimator: the facade robots embed.

    with DepthEstimator() as est:                       # the embedded default model
        result = est.predict("photo.jpg")               # result.inverse_depth, .confidence, .colorize()
        for frame, result in est.stream("rtsp://..."):  # capture, inference and output overlap
            ...

Thread safety: ``predict`` and ``predict_batch`` may be called from several threads sharing one
estimator; the backends are thread-safe (ONNX Runtime sessions are; OpenVINO uses one infer request per
thread) and the estimator keeps no per-call state outside the call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .artifact import Interpolation, ModelSpec, Precision, parse_enum, read_spec
from .backends.base import Backend, BackendKind, BackendOptions, FrameRunner, open_backend
from .errors import InputError, ModelLoadError
from .imageio import as_bgr_image
from .preprocess import ResizePlan, model_input_hw, preprocess, unpad_and_resize

MODEL_SUFFIXES = (".onnx", ".engine")


@dataclass(frozen=True)
class DepthResult:
    """One prediction at the input image's resolution.

    ``inverse_depth`` is relative (affine-invariant): larger means nearer; align a scale and shift to
    metric data to get depth. ``confidence`` is the weight of the chosen mixture component, in [0, 1]
    (all ones for models without a confidence output).
    """

    inverse_depth: np.ndarray
    confidence: np.ndarray
    timings_ms: dict[str, float] = field(default_factory=dict)

    def colorize(
        self, cmap: str = "turbo", invert: bool = False, value_range: tuple[float, float] | None = None
    ) -> np.ndarray:
        """The inverse depth as a BGR uint8 image (near is warm with turbo)."""
        from .postprocess import colorize

        return colorize(self.inverse_depth, cmap=cmap, invert=invert, value_range=value_range)


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

    ``model``: None (the embedded default), or a path to ``.onnx`` / ``.engine``. ``backend``: "auto",
    "onnxruntime", "openvino" or "tensorrt". ``spec``: pass a ModelSpec to load a third-party ONNX model
    that carries no edgedepth metadata. ``input_size`` (h, w) fixes the model input for dynamic-shape
    models; by default they keep the image's aspect at ``long_side`` pixels (the spec's longer side).
    ``cuda_preprocess`` (TensorRT) runs preprocessing as one fused CUDA kernel; other
    keyword arguments are :class:`BackendOptions` (e.g. ``cuda_graph=True``, ``device="cuda:1"``).
    """

    def __init__(
        self,
        model: str | Path | None = None,
        backend: str | BackendKind = "auto",
        precision: str | Precision = "fp32",
        threads: int | None = None,
        spec: ModelSpec | None = None,
        input_size: tuple[int, int] | None = None,
        long_side: int | None = None,
        max_pixels: int | None = None,
        cuda_preprocess: bool = True,
        **backend_options: Any,
    ) -> None:
        try:
            self.precision: Precision = parse_enum(Precision, precision, "precision")
        except ValueError as exc:
            raise InputError(str(exc)) from None
        self.model_path = resolve_model_path(model, self.precision)
        if spec is None:  # an engine carries its spec in its header, readable without TensorRT
            spec = read_spec(self.model_path)
        options = BackendOptions(precision=self.precision, threads=threads, **backend_options)
        self._backend, self.backend_reasons = open_backend(self.model_path, spec, backend, options)
        self.spec: ModelSpec = self._backend.spec
        if input_size is not None:
            h, w = input_size
            m = self.spec.size_multiple
            if h % m or w % m or h <= 0 or w <= 0:
                raise InputError(
                    f"input_size={input_size} must be positive multiples of {m} for {self.spec.name}"
                )
        self.input_size = input_size
        self.long_side = long_side or max(self.spec.input_size)
        self.max_pixels = max_pixels
        # TensorRT: predict() and stream() preprocess with the fused CUDA kernel, writing the engine's input.
        self._frame_runner = (
            self._backend
            if cuda_preprocess
            and isinstance(self._backend, FrameRunner)
            and self.spec.interpolation is Interpolation.LINEAR  # the kernel is bilinear
            else None
        )
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
        if not self.spec.dynamic_shape:
            return self.spec.input_size
        if self.input_size is not None:
            return self.input_size
        return model_input_hw(src_hw, self.spec, self.long_side)

    # -- prediction -------------------------------------------------------------------------------------
    def prepare(self, image: np.ndarray | str | Path) -> tuple[np.ndarray, np.ndarray, ResizePlan]:
        """Validate and convert an image, then preprocess it: (BGR frame, model input, plan)."""
        bgr = self._load(image)
        x, plan = preprocess(bgr, self.spec, self.input_hw(bgr.shape[:2]))
        return bgr, x, plan

    def _stage(self, image: Any) -> tuple[np.ndarray, np.ndarray | None, ResizePlan | None]:
        """Load, then preprocess on the CPU unless the backend does it on its device: (BGR, input, plan)."""
        if self._frame_runner is not None:
            return self._load(image), None, None
        return self.prepare(image)

    def _infer_staged(
        self, bgr: np.ndarray, x: np.ndarray | None, plan: ResizePlan | None
    ) -> tuple[dict[str, np.ndarray], ResizePlan]:
        """Run what ``_stage`` produced; without a CPU input the fused CUDA kernel preprocesses ``bgr``."""
        if x is not None and plan is not None:
            return self._backend.infer(x), plan
        if self._frame_runner is None:
            raise InputError("internal: a staged frame without model input needs device preprocessing")
        outputs, (device_plan,) = self._frame_runner.infer_frames([bgr], self.input_hw(bgr.shape[:2]))
        return outputs, device_plan

    def _load(self, image: np.ndarray | str | Path) -> np.ndarray:
        if self.max_pixels is None:
            return as_bgr_image(image)
        return as_bgr_image(image, max_pixels=self.max_pixels)

    def predict(self, image: np.ndarray | str | Path) -> DepthResult:
        """Inverse depth and confidence for one image (ndarray in BGR by default, or a path)."""
        self._check_open()
        t0 = time.perf_counter()
        bgr, x, plan = self._stage(image)
        t1 = time.perf_counter()
        outputs, plan = self._infer_staged(bgr, x, plan)
        t2 = time.perf_counter()
        result = self._finish(outputs, 0, plan)
        t3 = time.perf_counter()
        return DepthResult(
            result.inverse_depth,
            result.confidence,
            {"preprocess": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3, "postprocess": (t3 - t2) * 1e3},
        )

    def predict_batch(self, images: Sequence[np.ndarray | str | Path]) -> list[DepthResult]:
        """Predict several images; those sharing an input size run as one batch when the model allows it."""
        self._check_open()
        prepared = [self.prepare(img) for img in images]
        results: list[DepthResult | None] = [None] * len(prepared)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (_, x, _) in enumerate(prepared):
            groups.setdefault(x.shape, []).append(i)
        batchable = self.spec.dynamic_shape
        for indices in groups.values():
            chunks = [indices] if batchable else [[i] for i in indices]
            for chunk in chunks:
                t0 = time.perf_counter()
                outputs = self._backend.infer(np.concatenate([prepared[i][1] for i in chunk]))
                infer_ms = (time.perf_counter() - t0) * 1e3 / len(chunk)
                for j, i in enumerate(chunk):
                    r = self._finish(outputs, j, prepared[i][2])
                    results[i] = DepthResult(r.inverse_depth, r.confidence, {"infer": infer_ms})
        return [r for r in results if r is not None]

    def _finish(self, outputs: dict[str, np.ndarray], index: int, plan: ResizePlan) -> DepthResult:
        inv = unpad_and_resize(outputs[self.spec.output_name][index, 0], plan)
        conf_name = self.spec.confidence_name
        if conf_name and conf_name in outputs:
            conf = np.clip(unpad_and_resize(outputs[conf_name][index, 0], plan), 0.0, 1.0)
        else:
            conf = np.ones_like(inv)
        return DepthResult(inv, conf)

    def stream(self, source: Any, **options: Any) -> Iterator[tuple[np.ndarray, DepthResult]]:
        """Iterate ``(frame, result)`` over a camera, file, folder, URL or pipeline (see VideoSource).

        Capture, inference and the caller's loop body run in separate threads joined by bounded queues.
        Statistics are on the returned iterator's ``stats`` after (or during) the loop.
        """
        from .pipeline import StreamPipeline

        return StreamPipeline(self, source, **options)

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
