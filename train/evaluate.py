"""Evaluation on RGB-D folders: per-frame AbsRel and delta1 beside the ground-plane prior, grouped by source.

Every model goes through the runtime's :class:`~edgedepth.predictor.Predictor`: an exported file over its
ONNX Runtime backend, a PyTorch checkpoint over :class:`~edgedepth_train.torch_backend.TorchBackend`. So
preprocessing, the spec's output name and kind (a depth output is inverted) and the mapping back to the
frame are the runtime's own; ``edgedepth.metrics`` aligns and scores. An ONNX file needs neither torch nor
this package's models. A frame's group is ``meta.json``'s ``group`` (``rgbd_real``), or else the folder's
name (``rgbd``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgedepth.errors import InputError
from edgedepth.metrics import (
    DepthMetrics,
    GroupReport,
    bootstrap_skills,
    depth_metrics,
    ground_plane_prior,
    group_report,
    interval,
)
from edgedepth.predictor import InputPolicy, Predictor
from edgedepth.result import DepthResult
from edgedepth.rgbd import iter_rgbd


@dataclass(frozen=True)
class FrameScore:
    name: str
    group: str
    model: DepthMetrics
    prior: DepthMetrics


def policy(spec: Any, long_side: int | None) -> InputPolicy:
    """The evaluation's input size: the image's aspect at ``long_side``, or the spec's own size (None)."""
    return (
        InputPolicy(spec, long_side=long_side) if long_side else InputPolicy(spec, input_size=spec.input_size)
    )


def torch_predictor(model: Any, long_side: int | None) -> Predictor:
    from .torch_backend import TorchBackend

    backend = TorchBackend(model)
    return Predictor(backend, policy(backend.spec, long_side))


def onnx_predictor(path: str | Path, long_side: int | None, backend_name: str = "onnxruntime") -> Predictor:
    """Any model file the runtime loads (its spec from the file), on ``backend_name`` (ONNX Runtime's CPU
    provider by default; an INT8 file is best scored on the backend it runs on, OpenVINO on a CPU)."""
    from edgedepth.backends.base import BackendOptions
    from edgedepth.backends.registry import open_backend
    from edgedepth.model_file import read_spec

    backend, _ = open_backend(Path(path), read_spec(path), backend_name, BackendOptions())
    return Predictor(backend, policy(backend.spec, long_side))


class ViewEnsemble:
    """One model seen at several input sizes, and mirrored with ``flip``: each view's inverse depth is
    normalised (median 0, mean absolute deviation 1), the views are averaged and the mean is put back in the
    first view's units; confidences are averaged. Relative depth has a free scale and shift per prediction,
    so raw maps cannot be averaged. One view without ``flip`` returns the model's own result unchanged.

    ``members`` are :class:`~edgedepth.predictor.Predictor` or :class:`~edgedepth.DepthEstimator` objects of
    one model (``predict(bgr)`` -> DepthResult at the image's resolution). A teacher labelled this way is
    better than at one size: ``docs/training.md`` has the figures.
    """

    def __init__(self, members: list[Any], flip: bool = False) -> None:
        if not members:
            raise InputError("a view ensemble needs at least one member")
        self.members, self.flip = members, flip

    def predict(self, bgr: np.ndarray) -> DepthResult:
        results = [m.predict(bgr) for m in self.members]
        if len(results) == 1 and not self.flip:
            return results[0]
        maps = [(r.inverse_depth, r.confidence) for r in results]
        if self.flip:
            mirrored = np.ascontiguousarray(bgr[:, ::-1])
            for member in self.members:
                r = member.predict(mirrored)
                maps.append((r.inverse_depth[:, ::-1], r.confidence[:, ::-1]))
        normalised = []
        for inv, _ in maps:
            lv, sp = normalisation(inv)
            normalised.append((inv - lv) / sp)
        level, spread = normalisation(maps[0][0])
        mean = np.mean(normalised, axis=0)
        confidence = np.mean([c for _, c in maps], axis=0, dtype=np.float32)
        return DepthResult((mean * spread + level).astype(np.float32), confidence)


def normalisation(inverse_depth: np.ndarray) -> tuple[float, float]:
    """Median and mean absolute deviation (at least 1e-12) of a map."""
    level = float(np.median(inverse_depth))
    return level, max(float(np.mean(np.abs(inverse_depth - level))), 1e-12)


def evaluate_folder(predictor: Predictor | ViewEnsemble, root: str | Path) -> list[FrameScore]:
    """Score every frame of an RGB-D folder."""
    rows = []
    for frame in iter_rgbd(root):
        inv = predictor.predict(frame.bgr).inverse_depth
        prior = ground_plane_prior(*frame.depth_m.shape)
        group = str(frame.meta.get("group", Path(root).name))
        rows.append(
            FrameScore(
                frame.name, group, depth_metrics(inv, frame.depth_m), depth_metrics(prior, frame.depth_m)
            )
        )
    return rows


def report(rows: list[FrameScore]) -> GroupReport:
    return group_report((r.group, r.model, r.prior) for r in rows)


def skill_draws(rows: list[FrameScore], replicates: int) -> np.ndarray:
    """Bootstrap draws of the skill over frames within groups (paired across models on the same frames)."""
    return bootstrap_skills(((r.group, r.model, r.prior) for r in rows), replicates)


def report_dict(rows: list[FrameScore], bootstrap: int = 0) -> dict[str, Any]:
    """The JSON report: groups, macro, skill, its interval (``bootstrap`` > 0) and every frame's scores,
    which ``compare`` reads."""
    out = report(rows).as_dict()
    if bootstrap:
        out["skill_interval_90"] = list(interval(skill_draws(rows, bootstrap)))
        out["bootstrap"] = bootstrap
    out["frames"] = [
        {"name": r.name, "group": r.group, "model": r.model.as_dict(), "prior": r.prior.as_dict()}
        for r in rows
    ]
    return out


def rows_from_dict(data: dict[str, Any], source: str) -> list[FrameScore]:
    """The frames of a JSON report written by ``report_dict``; a report without them is an InputError."""
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
        raise InputError(
            f"{source}: no per-frame scores; write the report again with edgedepth-train eval --json"
        )
    try:
        return [
            FrameScore(f["name"], f["group"], DepthMetrics(**f["model"]), DepthMetrics(**f["prior"]))
            for f in data["frames"]
        ]
    except (KeyError, TypeError) as exc:
        raise InputError(f"{source}: a frame's scores are malformed ({exc})") from None


def compare(a: list[FrameScore], b: list[FrameScore], replicates: int) -> dict[str, Any]:
    """Two models on the same frames: their skills, and the paired bootstrap interval of skill(a)/skill(b).

    ``verdict`` is ``a`` or ``b`` when the 90% interval of the ratio lies wholly below or above 1, else
    ``undecided`` (train a second seed of each before choosing).
    """
    if [(r.name, r.group) for r in a] != [(r.name, r.group) for r in b]:
        raise InputError("the two reports scored different frames; evaluate both on the same --data")
    ratio = interval(skill_draws(a, replicates) / skill_draws(b, replicates))
    verdict = "a" if ratio[1] < 1.0 else "b" if ratio[0] > 1.0 else "undecided"
    return {"skill_a": report(a).skill, "skill_b": report(b).skill, "ratio_90": ratio, "verdict": verdict}


def compare_reports(a: Path, b: Path, replicates: int) -> list[str]:
    """``compare`` on every data folder two ``--json`` reports share, one line each with the verdict."""
    import json

    reports = []
    for path in (a, b):
        try:
            reports.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a readable JSON report ({exc})") from None
    # folders pair by name, so reports made from different working directories still pair; the frames
    # themselves must then match (compare checks)
    by_name = [{Path(root).name: root for root in r} for r in reports]
    common = [name for name in by_name[0] if name in by_name[1]]
    if not common:
        raise InputError(f"{a} and {b} share no data folder")
    lines = []
    for name in common:
        c = compare(
            *(
                rows_from_dict(r[roots[name]], f"{p} [{roots[name]}]")
                for r, roots, p in zip(reports, by_name, (a, b), strict=True)
            ),
            replicates,
        )
        root = by_name[0][name]
        low, high = c["ratio_90"]
        decision = {"a": f"{a} is better", "b": f"{b} is better"}.get(
            c["verdict"], "no decision: the interval holds 1 (compare a second seed of each)"
        )
        lines.append(f"{root}: skill {c['skill_a']:.3f} ({a}) against {c['skill_b']:.3f} ({b}); "
                     f"ratio 90% interval {low:.3f} to {high:.3f} ({replicates} paired draws): {decision}")  # fmt: skip
    return lines


def format_report(rows: list[FrameScore], title: str, per_frame: bool = False, bootstrap: int = 0) -> str:
    """Per-group table (model beside prior), the macro average and the skill, with its 90% bootstrap
    interval when ``bootstrap`` > 0; optionally every frame."""
    rep = report(rows)
    head = f"{'':<18} {'frames':>6} {'AbsRel':>8} {'delta1':>8} {'prior':>8} {'prior d1':>8} {'ratio':>6}"
    lines = [title]
    if per_frame:
        lines.append(f"{'frame':<40} {'group':<16} {'AbsRel':>8} {'delta1':>8} {'prior':>8}")
        lines += [
            f"{r.name:<40} {r.group:<16} {r.model.abs_rel:>8.4f} {r.model.delta1:>8.4f} {r.prior.abs_rel:>8.4f}"
            for r in rows
        ]
    lines.append(head)
    for name, g in rep.groups.items():
        lines.append(
            f"{name:<18} {g.frames:>6} {g.model.abs_rel:>8.4f} {g.model.delta1:>8.4f} "
            f"{g.prior.abs_rel:>8.4f} {g.prior.delta1:>8.4f} {g.ratio:>6.3f}"
        )
    m, p = rep.macro, rep.prior_macro
    lines.append(
        f"{'macro':<18} {len(rows):>6} {m.abs_rel:>8.4f} {m.delta1:>8.4f} {p.abs_rel:>8.4f} {p.delta1:>8.4f}"
    )
    lines.append(
        f"skill (geometric mean of ratios over {len(rep.groups)} groups; 1.0 = prior): {rep.skill:.3f}"
    )
    if bootstrap:
        low, high = interval(skill_draws(rows, bootstrap))
        lines.append(
            f"skill 90% interval ({bootstrap} bootstrap draws of frames within groups): {low:.3f} to {high:.3f}"
        )
    return "\n".join(lines)
