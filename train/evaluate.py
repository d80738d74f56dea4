"""Evaluation on RGB-D folders: per-frame AbsRel and delta1 beside the ground-plane prior, grouped by source.

Images are letterboxed with ``edgedepth.preprocess`` at the spec's size policy, the prediction is mapped
back to the frame's resolution, and ``edgedepth.metrics`` aligns and scores it. The same path serves a
PyTorch checkpoint and an exported ONNX file; an ONNX file needs neither torch nor this package's models.
A frame's group is ``meta.json``'s ``group`` (``rgbd_real``), or else the folder's name (``rgbd``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgedepth.artifact import ModelSpec
from edgedepth.metrics import (
    EVAL_LONG_SIDE,
    DepthMetrics,
    GroupReport,
    depth_metrics,
    ground_plane_prior,
    group_report,
)
from edgedepth.preprocess import model_input_hw, preprocess, unpad_and_resize
from edgedepth.rgbd import iter_rgbd

Predictor = Callable[[np.ndarray], np.ndarray]  # model input NCHW float32 -> inverse depth (H, W)


@dataclass(frozen=True)
class FrameScore:
    name: str
    group: str
    model: DepthMetrics
    prior: DepthMetrics


def torch_predictor(model: Any) -> Predictor:
    import torch

    from .models.head import mixture_readout

    model.eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            inv, _ = mixture_readout(model(torch.from_numpy(x)))
        return inv[0, 0].numpy()

    return run


def onnx_predictor(path: str | Path) -> Predictor:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0][0, 0]


def evaluate_folder(
    predict: Predictor, root: str | Path, spec: ModelSpec, long_side: int | None = EVAL_LONG_SIDE
) -> list[FrameScore]:
    """Score every frame of an RGB-D folder; ``long_side`` sets the input size of dynamic-shape models."""
    rows = []
    for frame in iter_rgbd(root):
        x, plan = preprocess(frame.bgr, spec, model_input_hw(frame.bgr.shape[:2], spec, long_side))
        inv = unpad_and_resize(predict(x), plan)
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


def format_report(rows: list[FrameScore], title: str, per_frame: bool = False) -> str:
    """Per-group table (model beside prior), the macro average and the skill; optionally every frame."""
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
    return "\n".join(lines)
