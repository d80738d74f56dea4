"""The golden-output check behind ``edgedepth verify``: does a model still give what its FP32 reference gives?

An engine that builds and runs can still output garbage (a TensorRT upgrade, a bad INT8 calibration, a
corrupted download). ``verify`` runs the model and the reference on the same frames (the embedded clip by
default) and scores their agreement with ``edgedepth.metrics.agreement``, the comparison the quantization
gate uses. A frame fails when its AbsRel against the reference is over the threshold (0.02 by default, 0.06
for an INT8 model, whose honest rounding already costs 0.01-0.04); the check fails when any frame does, and
the CLI then exits non-zero, so it fits a boot script or CI.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .artifact import ModelSpec
from .capture import VideoSource
from .embedded import DEMO_CLIP, default_model_path
from .errors import InputError
from .metrics import Agreement, agreement

DEFAULT_MAX_ABS_REL = 0.02
INT8_MAX_ABS_REL = 0.06  # the shipped INT8 model agrees with FP32 to 0.014-0.039 (docs/headless-robots.md, verify); garbage is > 0.1
DEFAULT_FRAMES = 16


@dataclass(frozen=True)
class FrameAgreement:
    name: str
    agreement: Agreement
    passed: bool


@dataclass
class VerifyReport:
    model: str
    reference: str
    frames_source: str
    max_abs_rel: float
    frames: list[FrameAgreement] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.frames) and all(f.passed for f in self.frames)

    @property
    def failed(self) -> list[str]:
        return [f.name for f in self.frames if not f.passed]

    def summary(self) -> dict[str, float]:
        """Mean AbsRel, delta1 and confidence-weighted AbsRel; the worst max and p99 errors."""
        a = [f.agreement for f in self.frames]
        return {
            "abs_rel": float(np.mean([x.abs_rel for x in a])),
            "delta1": float(np.mean([x.delta1 for x in a])),
            "weighted_abs_rel": float(np.mean([x.weighted_abs_rel for x in a])),
            "p99_error": float(max(x.p99_error for x in a)),
            "max_error": float(max(x.max_error for x in a)),
            "worst_abs_rel": float(max(x.abs_rel for x in a)),
        }

    def table(self) -> str:
        s = self.summary()
        lines = [
            f"verify {self.model}",
            f"  against {self.reference} on {len(self.frames)} frames of {self.frames_source}",
            f"  AbsRel {s['abs_rel']:.4f} (worst frame {s['worst_abs_rel']:.4f}, limit {self.max_abs_rel:.4f})"
            f"  delta1 {s['delta1']:.4f}  confidence-weighted AbsRel {s['weighted_abs_rel']:.4f}",
            f"  per-pixel relative error: p99 {s['p99_error']:.4f}, max {s['max_error']:.4f}",
        ]
        if self.passed:
            lines.append("PASS")
        else:
            lines.append(
                f"FAIL: {len(self.failed)} of {len(self.frames)} frames over AbsRel {self.max_abs_rel}:"
            )
            lines += [
                f"  {f.name}: AbsRel {f.agreement.abs_rel:.4f}, delta1 {f.agreement.delta1:.4f}"
                for f in self.frames
                if not f.passed
            ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(passed=self.passed, failed=self.failed, summary=self.summary())
        return out


def read_frames(source: str | os.PathLike[str], max_frames: int) -> list[tuple[str, np.ndarray]]:
    """Up to ``max_frames`` frames (name, BGR) of a video, image folder or other ``VideoSource``, spread evenly
    over the whole source. Frames are picked while reading, so memory stays bounded whatever the length: every
    ``stride``-th frame is kept, and when ``2 * max_frames`` are held every other one is dropped and the stride
    doubles (795 frames at ``max_frames=8`` hold at most 16)."""
    if max_frames < 1:
        raise InputError(f"--max-frames {max_frames}: give at least 1 frame")
    kept: list[tuple[str, np.ndarray]] = []
    stride, seen = 1, 0
    with VideoSource(str(source)) as src:
        for frame in src:
            if frame.image is None:
                continue
            if seen % stride == 0:
                kept.append((f"{Path(str(source)).name}#{frame.index}", frame.image))
                if len(kept) == 2 * max_frames:
                    kept, stride = kept[::2], stride * 2
            seen += 1
    if not kept:
        raise InputError(f"--frames {source}: no frames could be read")
    keep = np.unique(np.linspace(0, len(kept) - 1, min(max_frames, len(kept))).round().astype(int))
    return [kept[i] for i in keep]


def _outputs(spec: ModelSpec) -> str:
    names = [spec.output_name] + ([spec.confidence_name] if spec.confidence_name else [])
    return f"outputs {names} ({spec.output_kind.value})"


def check_compatible(model: str, model_spec: ModelSpec, reference: str, reference_spec: ModelSpec) -> None:
    """Refuse a reference that is not the same network: its outputs differ from the model's."""
    if (model_spec.output_name, model_spec.output_kind, model_spec.confidence_name) != (
        reference_spec.output_name,
        reference_spec.output_kind,
        reference_spec.confidence_name,
    ):
        raise InputError(
            f"cannot verify {model} ({_outputs(model_spec)}) against {reference} ({_outputs(reference_spec)}): "
            "they are not the same network; give --reference the FP32 ONNX the model was built from"
        )


def verify(
    model: str | os.PathLike[str],
    reference: str | os.PathLike[str] | None = None,
    frames: str | os.PathLike[str] | None = None,
    max_abs_rel: float | None = None,
    max_frames: int = DEFAULT_FRAMES,
    backend: str = "auto",
    reference_backend: str = "onnxruntime",
    long_side: int | None = None,
) -> VerifyReport:
    """Run ``model`` (any file and backend) and ``reference`` (default: the shipped FP32 model, on ONNX
    Runtime) on ``frames`` (default: the embedded clip) and score each frame's agreement. ``max_abs_rel``
    None: 0.02, or 0.06 for a model whose spec says INT8."""
    from .artifact import Precision
    from .estimator import DepthEstimator

    if max_abs_rel is not None and not (isinstance(max_abs_rel, int | float) and 0 < max_abs_rel < 1):
        raise InputError(f"--max-abs-rel {max_abs_rel!r}: give a relative error between 0 and 1, e.g. 0.02")
    reference_path = Path(reference) if reference is not None else default_model_path("fp32")
    frames_source = Path(frames) if frames is not None else DEMO_CLIP
    images = read_frames(frames_source, max_frames)
    with (
        DepthEstimator(Path(model), backend=backend, long_side=long_side) as est,
        DepthEstimator(reference_path, backend=reference_backend, long_side=long_side) as ref,
    ):
        check_compatible(str(model), est.spec, str(reference_path), ref.spec)
        if max_abs_rel is None:
            max_abs_rel = INT8_MAX_ABS_REL if est.spec.precision is Precision.INT8 else DEFAULT_MAX_ABS_REL
        report = VerifyReport(
            str(model),
            str(reference_path),
            str(frames_source),
            max_abs_rel,
            details={"backend": est.backend_name, "reference_backend": ref.backend_name},
        )
        for name, bgr in images:
            expected = ref.predict(bgr)
            a = agreement(est.predict(bgr).inverse_depth, expected.inverse_depth, expected.confidence)
            report.frames.append(
                FrameAgreement(name, a, bool(np.isfinite(a.abs_rel) and a.abs_rel <= max_abs_rel))
            )
    return report
