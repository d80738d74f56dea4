"""DepthResult: one prediction at the input image's resolution, and what a caller can derive from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .intrinsics import Intrinsics
    from .metric import MetricFit


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
