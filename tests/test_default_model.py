"""The embedded default model: shipped, traceable to its recipe, runs on both CPU backends, beats the prior."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import edgedepth
from edgedepth import DepthEstimator
from edgedepth.artifact import Precision, read_onnx_spec
from edgedepth.metrics import agreement_metrics, depth_metrics, ground_plane_prior, mean_metrics
from edgedepth.rgbd import iter_rgbd
from edgedepth_train.recipe import load_recipe


def test_default_model_is_shipped_small_and_traceable() -> None:
    path = edgedepth.default_model_path()
    assert path.stat().st_size <= 40 * 2**20
    spec = read_onnx_spec(path)
    assert spec.name == "efficientdepth-s" and spec.precision is Precision.FP32 and spec.dynamic_shape
    assert spec.provenance["recipe_sha256"] == load_recipe("efficientdepth-s").sha256


def test_default_model_agrees_across_backends(images_dir: Path) -> None:
    photos = sorted(images_dir.glob("*.jpg"))[:3]
    with DepthEstimator(backend="onnxruntime") as ort_est, DepthEstimator(backend="openvino") as ov_est:
        for photo in photos:
            a, b = ort_est.predict(photo), ov_est.predict(photo)
            assert a.inverse_depth.shape == b.inverse_depth.shape
            assert agreement_metrics(b.inverse_depth, a.inverse_depth).abs_rel < 0.01
            assert np.mean(np.abs(a.confidence - b.confidence)) < 0.01


def test_default_model_beats_the_ground_plane_prior(rgbd_dir: Path) -> None:
    """Accuracy regression check on the real RGB-D frames (no timing involved)."""
    ours, prior = [], []
    with DepthEstimator(backend="onnxruntime") as est:
        for frame in iter_rgbd(rgbd_dir):
            ours.append(depth_metrics(est.predict(frame.bgr).inverse_depth, frame.depth_m))
            prior.append(depth_metrics(ground_plane_prior(*frame.depth_m.shape), frame.depth_m))
    assert mean_metrics(ours).abs_rel < mean_metrics(prior).abs_rel - 0.02
    assert mean_metrics(ours).delta1 > mean_metrics(prior).delta1 + 0.02
