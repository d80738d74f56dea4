"""Evaluation on RGB-D folders: AbsRel and delta1 per frame, through the runtime's own preprocessing.

Images are letterboxed with ``edgedepth.preprocess`` at the spec's size policy, the prediction is mapped
back to the frame's resolution, and ``edgedepth.metrics`` aligns and scores it. The same path serves a
PyTorch checkpoint and an exported ONNX file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from edgedepth.artifact import ModelSpec
from edgedepth.metrics import DepthMetrics, depth_metrics, mean_metrics
from edgedepth.preprocess import model_input_hw, preprocess, unpad_and_resize
from edgedepth.rgbd import iter_rgbd

Predictor = Callable[[np.ndarray], np.ndarray]  # model input NCHW float32 -> inverse depth (H, W)


def torch_predictor(model: torch.nn.Module) -> Predictor:
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
    predict: Predictor, root: str | Path, spec: ModelSpec, long_side: int | None = 320
) -> list[tuple[str, DepthMetrics]]:
    """Score every frame of an RGB-D folder; ``long_side`` sets the input size of dynamic-shape models."""
    rows = []
    for frame in iter_rgbd(root):
        x, plan = preprocess(frame.bgr, spec, model_input_hw(frame.bgr.shape[:2], spec, long_side))
        inv = unpad_and_resize(predict(x), plan)
        rows.append((frame.name, depth_metrics(inv, frame.depth_m)))
    return rows


def format_table(rows: list[tuple[str, DepthMetrics]], title: str) -> str:
    mean = mean_metrics(m for _, m in rows)
    lines = [title, f"{'frame':<12} {'AbsRel':>8} {'delta1':>8}"]
    lines += [f"{name:<12} {m.abs_rel:>8.4f} {m.delta1:>8.4f}" for name, m in rows]
    lines.append(f"{'mean':<12} {mean.abs_rel:>8.4f} {mean.delta1:>8.4f}")
    return "\n".join(lines)
