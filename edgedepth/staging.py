"""One frame through the model: stage (load and preprocess), infer, finish (back to the frame's size).

``DepthEstimator.predict`` runs the three steps in a row; ``StreamPipeline`` runs staging on its capture
thread and the rest on its inference thread. Both go through :class:`FrameStager`, so the two paths cannot
drift apart. With a backend that preprocesses on its device (TensorRT's fused CUDA kernel), staging only
loads the frame and inference uploads and preprocesses it there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .artifact import ModelSpec, OutputKind
from .backends.base import Backend, FrameRunner
from .errors import InferenceError
from .preprocess import ResizePlan, preprocess, resize_to_source, unpad

if TYPE_CHECKING:
    from .intrinsics import Intrinsics
    from .metric import MetricFit

DEPTH_EPS = 1e-6  # depth outputs are inverted; this keeps a zero depth finite


@dataclass(frozen=True)
class DepthResult:
    """One prediction at the input image's resolution.

    ``inverse_depth`` is relative (affine-invariant): larger means nearer; align a scale and shift to
    metric data to get depth. Models whose spec says they output depth are inverted here, so every model
    reads the same way. ``confidence`` is the weight of the chosen mixture component, in [0, 1] (all ones
    for models without a confidence output).
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

    def to_metric(self, fit: MetricFit) -> np.ndarray:
        """Depth in metres under a scale fit (``edgedepth.metric.fit_points`` / ``fit_camera_height``)."""
        return fit.depth(self.inverse_depth)

    def point_cloud(
        self,
        intrinsics: Intrinsics,
        fit: MetricFit,
        image_bgr: np.ndarray | None = None,
        stride: int = 1,
        max_depth: float | None = None,
        min_confidence: float = 0.0,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Metric (N, 3) points and, with the frame, their RGB colours; see ``edgedepth.pointcloud``."""
        from .pointcloud import point_cloud

        return point_cloud(
            self.to_metric(fit), intrinsics, stride, max_depth, self.confidence, min_confidence, image_bgr
        )


Refine = Callable[[np.ndarray, DepthResult], DepthResult]  # (frame, model-resolution result) -> result


@dataclass(frozen=True)
class StagedFrame:
    """A frame ready for inference: the BGR image, and its model input and plan (None when the backend
    preprocesses on its device)."""

    bgr: np.ndarray
    input: np.ndarray | None
    plan: ResizePlan | None
    preprocess_ms: float


class FrameStager:
    """The three steps of one prediction, over a loaded backend.

    ``load`` turns an image argument (array or path) into a BGR array; ``input_hw`` picks the model input
    size for a frame size; ``frame_runner`` is the backend when it preprocesses on its device.
    """

    def __init__(
        self,
        backend: Backend,
        spec: ModelSpec,
        load: Callable[[Any], np.ndarray],
        input_hw: Callable[[tuple[int, int]], tuple[int, int]],
        frame_runner: FrameRunner | None = None,
    ) -> None:
        self.backend, self.spec = backend, spec
        self.load, self.input_hw, self.frame_runner = load, input_hw, frame_runner

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
        """Output ``index`` of a batch mapped back to its frame: inverse depth and confidence. ``refine``
        (the stream's stabiliser) runs on the maps at the model's resolution, with the frame ``bgr``,
        before they are resized back: on a fraction of the pixels."""
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
        return DepthResult(
            resize_to_source(result.inverse_depth, plan),
            np.clip(resize_to_source(result.confidence, plan), 0.0, 1.0),
            result.timings_ms,
        )

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
