"""The Predictor: one frame through the model, in three steps: stage (load and preprocess), infer, finish (back to
the frame's size), over any :class:`~edgedepth.backends.base.Backend`.

``DepthEstimator.predict`` runs the three steps in a row; the stream runs staging on its capture thread and
the rest on its inference thread; training evaluation and the quantization gate run it over a torch-backed
or an in-memory ONNX Runtime backend. So every path preprocesses, reads the spec's outputs (inverting a
depth output) and maps back identically. With a backend that preprocesses on its device (TensorRT's fused
CUDA kernel), staging only loads the frame and inference uploads and preprocesses it there.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .artifact import MAX_INPUT_PIXELS, ModelSpec, OutputKind
from .backends.base import Backend, FrameRunner
from .errors import InferenceError, InputError
from .imageio import as_bgr_image
from .preprocess import ResizePlan, model_input_hw, preprocess, unpad
from .result import DepthResult, Refine

DEPTH_EPS = 1e-6  # depth outputs are inverted; this keeps a zero depth finite


@dataclass(frozen=True)
class InputPolicy:
    """How an image becomes the model's input, resolved once from the spec and the caller's overrides.

    A static-shape model always takes its spec's size. A dynamic one takes ``input_size`` (h, w) when
    given, else keeps the image's aspect at ``long_side`` pixels (default: the spec's longer side).
    ``max_pixels`` caps what an image file may decode to.
    """

    spec: ModelSpec
    input_size: tuple[int, int] | None = None
    long_side: int | None = None
    max_pixels: int | None = None

    def __post_init__(self) -> None:
        m = self.spec.size_multiple
        if self.input_size is not None:
            h, w = self.input_size
            if h % m or w % m or h <= 0 or w <= 0:
                raise InputError(
                    f"input_size={self.input_size} must be positive multiples of {m} for {self.spec.name}"
                )
        if self.long_side is None:
            object.__setattr__(self, "long_side", max(self.spec.input_size))
        side, most = self.long_side, int(MAX_INPUT_PIXELS**0.5)
        if isinstance(side, bool) or not isinstance(side, int) or not m <= side <= most:
            raise InputError(
                f"long_side={side!r} for {self.spec.name}: give a whole number of pixels from {m} to {most}"
            )

    def input_hw(self, src_hw: tuple[int, int]) -> tuple[int, int]:
        """The model input size used for an image of ``src_hw``."""
        if not self.spec.dynamic_shape:
            return self.spec.input_size
        if self.input_size is not None:
            return self.input_size
        return model_input_hw(src_hw, self.spec, self.long_side)

    def load(self, image: Any) -> np.ndarray:
        """An image argument (array or path) as a BGR uint8 array, checked; see ``imageio.as_bgr_image``."""
        if self.max_pixels is None:
            return as_bgr_image(image)
        return as_bgr_image(image, max_pixels=self.max_pixels)


@dataclass(frozen=True)
class StagedFrame:
    """A frame ready for inference: the BGR image, and its model input and plan (None when the backend
    preprocesses on its device)."""

    bgr: np.ndarray
    input: np.ndarray | None
    plan: ResizePlan | None
    preprocess_ms: float


class Predictor:
    """The three steps of one prediction, over a loaded backend (any :class:`Backend`).

    ``policy`` resolves each image's model input size and loads image arguments (default: the spec's
    size policy); ``frame_runner`` is the backend when it preprocesses on its device (TensorRT).
    """

    def __init__(
        self, backend: Backend, policy: InputPolicy | None = None, frame_runner: FrameRunner | None = None
    ) -> None:
        self.backend, self.spec = backend, backend.spec
        self.policy = policy or InputPolicy(backend.spec)
        self.load, self.input_hw, self.frame_runner = self.policy.load, self.policy.input_hw, frame_runner

    def predict(self, image: Any) -> DepthResult:
        """Inverse depth and confidence for one image, at its resolution."""
        return self.run(self.stage(image))

    def prepare(self, image: Any) -> tuple[np.ndarray, np.ndarray, ResizePlan]:
        """Load and preprocess on the CPU: (BGR frame, model input, plan)."""
        bgr = self.load(image)
        x, plan = preprocess(bgr, self.spec, self.input_hw(bgr.shape[:2]))
        return bgr, x, plan

    def stage(self, image: Any) -> StagedFrame:
        t0 = time.perf_counter()
        if self.frame_runner is not None:
            bgr, x, plan = self.load(image), None, None
        else:
            bgr, x, plan = self.prepare(image)
        return StagedFrame(bgr, x, plan, (time.perf_counter() - t0) * 1e3)

    def depth_map(self, outputs: dict[str, np.ndarray], name: str, index: int) -> np.ndarray:
        """Map ``index`` of output ``name``: (N, 1, H, W), or (N, H, W) as some third-party exports give it;
        any other shape raises InferenceError naming the model file."""
        value = outputs[name]
        if value.ndim == 3:
            value = value[:, None]
        if value.ndim != 4 or value.shape[1] != 1 or not 0 <= index < value.shape[0] or 0 in value.shape:
            raise InferenceError(
                f"{self.backend.source}: output {name!r} has shape {outputs[name].shape}; a depth model gives "
                "(N, 1, H, W) or (N, H, W) maps"
            )
        return value[index, 0]

    def finish(
        self,
        outputs: dict[str, np.ndarray],
        index: int,
        plan: ResizePlan,
        timings_ms: dict[str, float],
        bgr: np.ndarray,
        refine: Refine | None = None,
    ) -> DepthResult:
        """Output ``index`` of a batch for its frame: inverse depth and confidence at the model's resolution,
        resized to the frame's when first read (``DepthResult``). ``refine`` (the stream's stabiliser) runs on
        the maps at the model's resolution, with the frame ``bgr``: on a fraction of the pixels."""
        inv = unpad(self.depth_map(outputs, self.spec.output_name, index), plan)
        if self.spec.output_kind is not OutputKind.INVERSE_DEPTH:
            inv = 1.0 / np.maximum(inv, DEPTH_EPS)
        conf_name = self.spec.confidence_name
        if conf_name and conf_name in outputs:
            conf = np.clip(unpad(self.depth_map(outputs, conf_name, index), plan), 0.0, 1.0)
        else:
            conf = np.ones_like(inv)
        result = DepthResult(inv, conf, timings_ms)
        if refine is not None:
            result = refine(bgr, result)
        return DepthResult(result.inverse_depth, result.confidence, result.timings_ms, plan)

    def run(self, staged: StagedFrame, refine: Refine | None = None) -> DepthResult:
        """Infer and finish a staged frame, with the time each step took."""
        return self.run_batch([staged], [refine])[0]

    def run_batch(
        self, staged: Sequence[StagedFrame], refine: Sequence[Refine | None] | None = None
    ) -> list[DepthResult]:
        """Staged frames of one input size as one batch; each result's ``infer`` time is its share.
        ``refine``: one per frame, or None (see ``finish``)."""
        t0 = time.perf_counter()
        inputs = [s.input for s in staged if s.input is not None]
        plans: Sequence[ResizePlan | None] = [s.plan for s in staged]
        if len(inputs) == len(staged):
            outputs = self.backend.infer(np.concatenate(inputs))
        else:
            if self.frame_runner is None:
                raise InferenceError(
                    f"{self.backend.source}: a frame staged without its model input needs a backend that "
                    "preprocesses on its device (TensorRT); stage frames with this estimator's stager"
                )
            outputs, plans = self.frame_runner.infer_frames(
                [s.bgr for s in staged], self.input_hw(staged[0].bgr.shape[:2])
            )
        infer_ms = (time.perf_counter() - t0) * 1e3 / len(staged)
        refines = refine if refine is not None else [None] * len(staged)
        results = []
        for i, (s, plan, r) in enumerate(zip(staged, plans, refines, strict=True)):
            t1 = time.perf_counter()
            assert plan is not None
            result = self.finish(outputs, i, plan, {}, s.bgr, r)
            result.timings_ms.update(
                preprocess=s.preprocess_ms, infer=infer_ms, postprocess=(time.perf_counter() - t1) * 1e3
            )
            results.append(result)
        return results

    def plan_batches(self, staged: Sequence[StagedFrame], batch: bool = True) -> list[list[int]]:
        """Indices of ``staged`` grouped into model calls: those sharing an input size together when ``batch``
        is set and the model takes batches, else one call each."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, s in enumerate(staged):
            groups.setdefault(s.input.shape if s.input is not None else s.bgr.shape, []).append(i)
        if batch and self.spec.dynamic_shape:
            return list(groups.values())
        return [[i] for indices in groups.values() for i in indices]

    def run_many(self, staged: Sequence[StagedFrame], batch: bool = True) -> list[DepthResult]:
        """Results, in order, for frames of any sizes (see ``plan_batches``)."""
        results: list[DepthResult | None] = [None] * len(staged)
        for chunk in self.plan_batches(staged, batch):
            for i, result in zip(chunk, self.run_batch([staged[i] for i in chunk]), strict=True):
                results[i] = result
        return [r for r in results if r is not None]
