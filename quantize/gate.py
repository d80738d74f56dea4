"""The accuracy gate: a reduced-precision model is written only if it stays within ``max_drop`` of FP32.

Both models run through ``edgedepth.DepthEstimator`` (the runtime's own preprocessing, backend and
postprocessing) and are scored with ``edgedepth.metrics``: against ground truth on a validation RGB-D folder
(AbsRel, delta1), or, with no ground truth, as the candidate's agreement with FP32 on validation images.
On validation videos it also compares their flicker (``edgedepth.stabilize.flicker``, consecutive frames):
a quantized model can keep its accuracy on still frames and still shimmer on video.
:func:`publish` saves the candidate to a temp file beside the output, gates it, writes the JSON report either
way, and moves the model into place only on a pass; the temp file is removed in every other case.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgedepth.capture import read_video_frames
from edgedepth.errors import InputError
from edgedepth.fileio import atomic_path, atomic_write_bytes
from edgedepth.metrics import (
    DepthMetrics,
    agreement_metrics,
    depth_metrics,
    ground_plane_prior,
    group_report,
    mean_metrics,
)
from edgedepth.rgbd import iter_rgbd
from edgedepth.stabilize import flicker, static_masks

from .calibration import gather_bgr_frames
from .errors import AccuracyGateError, CalibrationError

if TYPE_CHECKING:
    from edgedepth.estimator import DepthEstimator

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class GateConfig:
    """What the gate evaluates on and how much it allows.

    ``rgbd``: validation RGB-D folder (ground truth). Without it, ``images`` (image folders/videos) are used
    for agreement with FP32, up to ``agreement_frames`` frames. ``max_drop``: allowed rise of AbsRel;
    ``max_delta1_drop``: allowed fall of delta1 (0.01 = one point); ``max_skill_drop``: allowed rise of the
    skill against the ground-plane prior (ground truth only). With ground truth, AbsRel and delta1 are macro
    averages over the frames' groups (``meta.json``'s ``group``), as ``edgedepth-train eval`` reports them.
    ``long_side``: the input's longer side for dynamic-shape models (None: the estimator's default, the spec's).
    ``skill_rgbd``: a second RGB-D folder on which the skill is judged instead of ``rgbd``'s (for example
    AbsRel on a small validation set and the skill on a larger multi-group one). ``videos``: validation
    videos whose first ``video_frames`` frames both models predict; the candidate's flicker, averaged over
    the videos, may exceed the reference's by at most the fraction ``max_flicker_rise``.
    """

    rgbd: str | None = None
    skill_rgbd: str | None = None
    images: tuple[str, ...] = ()
    max_drop: float = 0.01
    max_delta1_drop: float = 0.01
    max_skill_drop: float = 0.02
    long_side: int | None = None
    backend: str = "onnxruntime"
    agreement_frames: int = 32
    videos: tuple[str, ...] = ()
    video_frames: int = 120
    max_flicker_rise: float = 0.25


@dataclass
class GateReport:
    """Both models' numbers, the deltas and the verdict; ``details`` carries the producer's settings."""

    mode: str  # "ground_truth" or "agreement"
    dataset: str
    reference: dict[str, float]
    candidate: dict[str, float]
    delta_abs_rel: float
    delta_delta1: float
    max_drop: float
    max_delta1_drop: float
    passed: bool
    reasons: list[str]
    frames: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    reference_name: str = "fp32"
    candidate_name: str = "candidate"
    delta_skill: float | None = None  # ground truth only
    max_skill_drop: float | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False)

    def table(self) -> str:
        """A printable table: both models' AbsRel/delta1, the deltas and the limits."""
        ref, cand = self.reference, self.candidate
        reference_name, candidate_name = self.reference_name, self.candidate_name
        lines = [
            f"accuracy gate ({self.mode}, {self.dataset}, {len(self.frames)} frames)",
            f"{'model':<12} {'AbsRel':>8} {'delta1':>8}",
            f"{reference_name:<12} {ref['abs_rel']:>8.4f} {ref['delta1']:>8.4f}",
            f"{candidate_name:<12} {cand['abs_rel']:>8.4f} {cand['delta1']:>8.4f}",
            f"{'delta':<12} {self.delta_abs_rel:>+8.4f} {self.delta_delta1:>+8.4f}",
            f"{'limit':<12} {self.max_drop:>+8.4f} {-self.max_delta1_drop:>+8.4f}",
        ]
        if self.delta_skill is not None:
            lines.append(
                f"skill {ref['skill']:.4f} -> {cand['skill']:.4f} ({self.delta_skill:+.4f}, limit {self.max_skill_drop:+.4f})"
            )
        if "flicker" in cand:
            rise, limit = flicker_rise(ref["flicker"], cand["flicker"]), self.details["max_flicker_rise"]
            lines.append(
                f"flicker {ref['flicker']:.4f} -> {cand['flicker']:.4f} ({rise:+.0%}, limit {limit:+.0%})"
            )
        lines.append("PASS" if self.passed else "FAIL: " + "; ".join(self.reasons))
        return "\n".join(lines)


def _estimator(path: Path, config: GateConfig) -> DepthEstimator:
    from edgedepth.estimator import DepthEstimator

    return DepthEstimator(path, backend=config.backend, long_side=config.long_side)


GroupRow = tuple[str, DepthMetrics, DepthMetrics, DepthMetrics]  # group, reference, candidate, prior


def _ground_truth_rows(
    folder: str, ref_est: DepthEstimator, cand_est: DepthEstimator, frames: list[dict[str, Any]]
) -> list[GroupRow]:
    """(group, reference, candidate, ground-plane prior) metrics per frame of an RGB-D folder; each frame's
    numbers are also appended to ``frames``."""
    rows = []
    for frame in iter_rgbd(folder):
        r = depth_metrics(ref_est.predict(frame.bgr).inverse_depth, frame.depth_m)
        c = depth_metrics(cand_est.predict(frame.bgr).inverse_depth, frame.depth_m)
        prior = depth_metrics(ground_plane_prior(*frame.depth_m.shape), frame.depth_m)
        rows.append((str(frame.meta.get("group", Path(folder).name)), r, c, prior))
        frames.append({"name": frame.name, "reference": r.as_dict(), "candidate": c.as_dict()})
    return rows


def video_frames(path: str, count: int) -> list[np.ndarray]:
    """The first ``count`` frames of a video, consecutive; a file that yields fewer than two is named."""
    frames = read_video_frames(path, count)
    if len(frames) < 2:
        raise InputError(
            f"validation video {path}: OpenCV read {len(frames)} frame(s); flicker needs two or more"
        )
    return frames


def flicker_rise(reference: float, candidate: float) -> float:
    """The candidate's flicker relative to the reference's, minus one (+0.25: a quarter more)."""
    return candidate / max(reference, 1e-12) - 1


def _flicker(est: DepthEstimator, frames: list[np.ndarray]) -> float:
    maps = [est.predict(frame).inverse_depth for frame in frames]
    return flicker(maps, static_masks(frames, maps[0].shape))


def evaluate(reference: PathLike, candidate: PathLike, config: GateConfig) -> GateReport:
    """Run both models on the gate's data and decide; never raises on a fail (see :func:`check`)."""
    frames: list[dict[str, Any]] = []
    ref_rows: list[DepthMetrics] = []
    cand_rows: list[DepthMetrics] = []
    grouped: list[GroupRow] = []
    skill_rows: list[GroupRow] = []
    with _estimator(Path(reference), config) as ref_est, _estimator(Path(candidate), config) as cand_est:
        if config.rgbd is not None:
            mode, dataset = "ground_truth", config.rgbd
            grouped = _ground_truth_rows(config.rgbd, ref_est, cand_est, frames)
            skill_rows = grouped
            if config.skill_rgbd is not None:
                skill_rows = _ground_truth_rows(config.skill_rgbd, ref_est, cand_est, [])
        else:
            if not config.images:
                raise InputError("the accuracy gate needs a validation RGB-D folder (rgbd) or images")
            mode, dataset = "agreement", ", ".join(config.images)
            for name, bgr in gather_bgr_frames(config.images, config.agreement_frames):
                ref_inv = ref_est.predict(bgr).inverse_depth
                r = agreement_metrics(ref_inv, ref_inv)
                c = agreement_metrics(cand_est.predict(bgr).inverse_depth, ref_inv)
                ref_rows.append(r)
                cand_rows.append(c)
                frames.append({"name": name, "reference": r.as_dict(), "candidate": c.as_dict()})
        clips = [video_frames(v, config.video_frames) for v in config.videos]
        ref_flicker = [_flicker(ref_est, clip) for clip in clips]
        cand_flicker = [_flicker(cand_est, clip) for clip in clips]
    if not frames:
        raise CalibrationError(f"the accuracy gate found no usable frames in {dataset}")
    reasons = []
    ref_skill = cand_skill = d_skill = None
    if grouped:
        ref = group_report((g, r, p) for g, r, _, p in grouped).macro
        cand = group_report((g, c, p) for g, _, c, p in grouped).macro
        ref_skill = group_report((g, r, p) for g, r, _, p in skill_rows).skill
        cand_skill = group_report((g, c, p) for g, _, c, p in skill_rows).skill
        d_skill = cand_skill - ref_skill
        if not np.isfinite(d_skill) or d_skill > config.max_skill_drop:
            reasons.append(
                f"skill changed by {d_skill:+.4f}, more than max_skill_drop={config.max_skill_drop:+.4f} allows"
            )
    else:
        ref, cand = mean_metrics(ref_rows), mean_metrics(cand_rows)
    d_abs, d_d1 = cand.abs_rel - ref.abs_rel, cand.delta1 - ref.delta1
    if not np.isfinite(d_abs) or d_abs > config.max_drop:
        reasons.append(f"AbsRel changed by {d_abs:+.4f}, more than max_drop={config.max_drop:+.4f} allows")
    if not np.isfinite(d_d1) or -d_d1 > config.max_delta1_drop:
        reasons.append(
            f"delta1 changed by {d_d1:+.4f}, below -max_delta1_drop={-config.max_delta1_drop:+.4f}"
        )
    flickers: tuple[dict[str, float], dict[str, float]] = ({}, {})
    if clips:
        flickers = {"flicker": float(np.mean(ref_flicker))}, {"flicker": float(np.mean(cand_flicker))}
        rise = flicker_rise(flickers[0]["flicker"], flickers[1]["flicker"])
        if not np.isfinite(rise) or rise > config.max_flicker_rise:
            reasons.append(
                f"flicker on {', '.join(config.videos)} rose by {rise:+.0%}, more than "
                f"max_flicker_rise={config.max_flicker_rise:+.0%} allows"
            )
    details: dict[str, Any] = {"backend": config.backend}
    if grouped:
        details["skill_dataset"] = config.skill_rgbd or config.rgbd
    if clips:
        details.update(
            max_flicker_rise=config.max_flicker_rise,
            flicker_per_video={v: {"reference": r, "candidate": c}
                               for v, r, c in zip(config.videos, ref_flicker, cand_flicker, strict=True)},
        )  # fmt: skip
    return GateReport(
        mode=mode,
        dataset=dataset,
        reference={
            "abs_rel": ref.abs_rel,
            "delta1": ref.delta1,
            **({} if ref_skill is None else {"skill": ref_skill}),
            **flickers[0],
        },
        candidate={
            "abs_rel": cand.abs_rel,
            "delta1": cand.delta1,
            **({} if cand_skill is None else {"skill": cand_skill}),
            **flickers[1],
        },
        delta_abs_rel=d_abs,
        delta_delta1=d_d1,
        max_drop=config.max_drop,
        max_delta1_drop=config.max_delta1_drop,
        passed=not reasons,
        reasons=reasons,
        frames=frames,
        delta_skill=d_skill,
        max_skill_drop=config.max_skill_drop if grouped else None,
        details=details,
    )


def default_report_path(output: PathLike) -> Path:
    """``model-int8.onnx`` -> ``model-int8.report.json``."""
    return Path(output).with_suffix(".report.json")


def publish(
    candidate: Any,
    output: PathLike,
    reference: PathLike,
    config: GateConfig,
    report_path: PathLike | None = None,
    details: dict[str, Any] | None = None,
    candidate_name: str = "candidate",
) -> GateReport:
    """Gate an in-memory ONNX model against ``reference`` and, only if it passes, write it to ``output``.

    The report (JSON, atomic) goes to ``report_path`` (default ``<output stem>.report.json``) on a pass and
    on a fail. A fail raises AccuracyGateError and leaves ``output`` untouched; so does Ctrl-C.
    """
    import onnx

    output = Path(output)
    if output.suffix.lower() != ".onnx":
        raise InputError(f"output {output} must end in '.onnx'")
    if output.exists() and output.resolve() == Path(reference).resolve():
        raise InputError(f"output {output} is the reference model itself; choose another path")
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output, suffix=".tmp.onnx") as tmp:  # becomes output only if the block ends normally
        onnx.save(candidate, str(tmp))
        report = evaluate(reference, tmp, config)
        report.candidate_name = candidate_name
        report.details.update(details or {})
        report.details["size_bytes"] = {
            "reference": Path(reference).stat().st_size,
            candidate_name: tmp.stat().st_size,
        }
        report.details["output"] = str(output)
        report.details["written"] = report.passed
        atomic_write_bytes(Path(report_path or default_report_path(output)), report.to_json().encode())
        if not report.passed:
            raise AccuracyGateError(
                f"{output} was NOT written: {'; '.join(report.reasons)}. Report: "
                f"{report_path or default_report_path(output)}\n{report.table()}"
            )
    return report
