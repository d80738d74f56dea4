"""Training evaluation goes through the runtime's Predictor: a model that outputs depth is inverted, its
outputs are read by name, and a checkpoint and its ONNX export are scored by one code path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgedepth import DepthEstimator
from edgedepth.artifact import OutputKind
from edgedepth.metrics import depth_metrics
from edgedepth_train.evaluate import evaluate_folder, onnx_predictor
from tests.tiny_models import make_tiny_depth_onnx, tiny_spec, write_random_rgbd


@pytest.fixture()
def rgbd(tmp_path: Path) -> Path:
    return write_random_rgbd(tmp_path / "rgbd", 3, (48, 64))


def test_a_depth_output_model_is_scored_as_the_runtime_reads_it(tmp_path: Path, rgbd: Path) -> None:
    depth_spec = tiny_spec(output_kind=OutputKind.DEPTH, output_name="depth", confidence_name=None)
    model = make_tiny_depth_onnx(tmp_path / "depth.onnx", spec=depth_spec)
    rows = evaluate_folder(onnx_predictor(model, 64), rgbd)
    with DepthEstimator(model, backend="onnxruntime", long_side=64) as est:
        for row, frame in zip(rows, sorted(rgbd.iterdir()), strict=True):
            expected = depth_metrics(
                est.predict(frame / "rgb.png").inverse_depth, np.load(frame / "depth.npy")
            )
            assert row.model.abs_rel == pytest.approx(expected.abs_rel, rel=1e-6)
    as_inverse = make_tiny_depth_onnx(tmp_path / "inverse.onnx")  # the same graph, read as inverse depth
    assert [r.model for r in evaluate_folder(onnx_predictor(as_inverse, 64), rgbd)] != [r.model for r in rows]
