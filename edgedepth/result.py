"""DepthResult: one prediction at the input image's resolution, and what a caller can derive from it."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .intrinsics import Intrinsics
    from .metric import MetricFit
    from .preprocess import ResizePlan


class DepthResult:
    """One prediction at the input image's resolution.

    ``inverse_depth`` is relative (affine-invariant): larger means nearer; align a scale and shift to
    metric data to get depth. Models whose spec says they output depth are inverted here, so every model
    reads the same way. ``confidence`` is the weight of the chosen mixture component, in [0, 1] (all ones
    for models without a confidence output).

    The predictor hands over both maps at the model's resolution with the ``plan`` that maps them back:
    each is resized to the image's resolution when first read, on the reader's thread, and only if read
    (a stream that shows the colourised depth never resizes the confidence). ``model_inverse_depth`` and
    ``model_confidence`` are the maps before that resize; ``timings_ms["resize"]`` adds up the resizes.
    """

    def __init__(
        self,
        inverse_depth: np.ndarray,
        confidence: np.ndarray,
        timings_ms: dict[str, float] | None = None,
        plan: ResizePlan | None = None,
    ) -> None:
        self.model_inverse_depth = inverse_depth
        self.model_confidence = confidence
        self.timings_ms = {} if timings_ms is None else timings_ms
        self.plan = plan  # None: the maps already have the image's resolution

    def _to_frame(self, value: np.ndarray) -> np.ndarray:
        if self.plan is None:
            return value
        from .preprocess import resize_to_source

        t0 = time.perf_counter()
        out = resize_to_source(value, self.plan)
        self.timings_ms["resize"] = self.timings_ms.get("resize", 0.0) + (time.perf_counter() - t0) * 1e3
        return out

    @cached_property
    def inverse_depth(self) -> np.ndarray:
        return self._to_frame(self.model_inverse_depth)

    @cached_property
    def confidence(self) -> np.ndarray:
        if self.plan is None:
            return self.model_confidence
        return np.clip(self._to_frame(self.model_confidence), 0.0, 1.0)

    def with_maps(self, inverse_depth: np.ndarray, timings_ms: dict[str, float]) -> DepthResult:
        """The same result with another inverse depth (of the same resolution) and timings."""
        return DepthResult(inverse_depth, self.model_confidence, timings_ms, self.plan)

    def colorize(
        self,
        cmap: str = "turbo",
        invert: bool = False,
        value_range: tuple[float, float] | None = None,
        at_model_resolution: bool = False,
    ) -> np.ndarray:
        """The inverse depth as a BGR uint8 image of the frame's size (near is warm with turbo).

        ``at_model_resolution`` colours the model's map and resizes the colour image instead: about 6x
        cheaper for a 768x576 frame (colours between two model pixels are blended rather than looked up),
        which is what the stream's video and web outputs do.
        """
        from .postprocess import colorize

        if not at_model_resolution or self.plan is None:
            return colorize(self.inverse_depth, cmap=cmap, invert=invert, value_range=value_range)
        return self._to_frame(
            colorize(self.model_inverse_depth, cmap=cmap, invert=invert, value_range=value_range)
        )

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
