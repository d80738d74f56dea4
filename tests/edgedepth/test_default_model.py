"""The embedded default model: shipped, traceable to its recipe, runs on both CPU backends, beats the prior."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import edgedepth
from edgedepth import DepthEstimator
from edgedepth.artifact import Precision
from edgedepth.fileio import file_sha256
from edgedepth.metrics import agreement_metrics, depth_metrics, ground_plane_prior, mean_metrics
from edgedepth.model_file import read_onnx_spec
from edgedepth.rgbd import iter_rgbd


@pytest.mark.train
def test_default_model_is_shipped_small_and_traceable() -> None:
    from edgedepth_train.recipe import load_recipe

    path = edgedepth.default_model_path()
    assert path.stat().st_size <= 40 * 2**20
    spec = read_onnx_spec(path)
    assert spec.name == "efficientdepth-s" and spec.version == "3"
    assert spec.precision is Precision.FP32 and spec.dynamic_shape
    repo = Path(__file__).resolve().parents[2]
    assert spec.provenance["recipe_sha256"] == load_recipe(repo / spec.provenance["recipe"]).sha256
    for stage in ("stage1_recipe", "more_recipe"):
        assert load_recipe(repo / spec.provenance[stage]).stages
    teacher = load_recipe(repo / spec.provenance["distill_recipe"]).sources["real"].teacher
    assert file_sha256(repo / str(teacher)) == spec.provenance["teacher_sha256"]


def test_default_model_agrees_across_backends(images_dir: Path) -> None:
    photos = sorted(images_dir.glob("*.jpg"))[:3]
    fp32 = {"precision": "fp32"}  # the same file on both (auto takes INT8 on OpenVINO where that is faster)
    with (
        DepthEstimator(backend="onnxruntime", **fp32) as ort_est,
        DepthEstimator(backend="openvino", **fp32) as ov_est,
    ):
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


def test_shipped_models_match_their_recorded_sha256(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SHA256SUMS lists every shipped model; a corrupt copy is named and never run."""
    from edgedepth import embedded
    from edgedepth.errors import ModelLoadError

    sums = embedded.shipped_sha256()
    assert sorted(sums) == sorted(p.name for p in embedded.MODELS_DIR.glob("*.onnx"))
    for precision in ("fp32", "int8"):
        embedded.default_model_path(precision)  # verifies
    corrupt = tmp_path / "models"
    corrupt.mkdir()
    for name in sums:
        data = bytearray((embedded.MODELS_DIR / name).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (corrupt / name).write_bytes(bytes(data))
    (corrupt / "SHA256SUMS").write_text((embedded.MODELS_DIR / "SHA256SUMS").read_text())
    monkeypatch.setattr(embedded, "MODELS_DIR", corrupt)
    with pytest.raises(ModelLoadError, match=r"embedded model .*efficientdepth-s-fp32\.onnx is corrupt"):
        embedded.default_model_path("fp32")


def test_a_user_model_can_be_checked_against_its_sha256(tiny_onnx: Path) -> None:
    from edgedepth import DepthEstimator
    from edgedepth.errors import ModelLoadError
    from edgedepth.fileio import file_sha256

    with DepthEstimator(tiny_onnx, verify_sha256=file_sha256(tiny_onnx)):
        pass
    with pytest.raises(ModelLoadError, match=r"tiny\.onnx is corrupt or not the expected file"):
        DepthEstimator(tiny_onnx, verify_sha256="0" * 64)


def test_auto_precision_takes_int8_only_where_it_is_faster_and_gated(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgedepth import cpu, embedded

    monkeypatch.setattr(cpu, "cpu_isa_flags", lambda: ["avx2", "avx512_vnni"])
    assert embedded.auto_precision("auto")[0] is Precision.INT8
    assert "avx512_vnni" in embedded.auto_precision("openvino")[1]
    precision, why = embedded.auto_precision("onnxruntime")
    assert precision is Precision.FP32 and "only on OpenVINO" in why
    monkeypatch.setattr(cpu, "cpu_isa_flags", lambda: ["avx2", "avx512f"])
    precision, why = embedded.auto_precision("auto")
    assert precision is Precision.FP32 and "INT8 would not be faster" in why
    with DepthEstimator(backend="onnxruntime") as est:  # the default, and the reason in backend_reasons
        assert est.precision is Precision.FP32 and est.model_path.name.endswith("-fp32.onnx")
        assert est.backend_reasons[0].startswith("precision auto -> fp32: backend onnxruntime")
