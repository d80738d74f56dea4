"""ONNX export: checker, ORT-vs-PyTorch parity, fixed and dynamic shapes, and the spec round trip."""

from __future__ import annotations

from pathlib import Path

import onnx
import onnxruntime as ort
import pytest
import torch

from edgedepth.model_file import read_onnx_spec
from edgedepth_train.export import export_onnx, verify_parity
from edgedepth_train.models.registry import build_model


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("efficientdepth-s", pretrained=False).eval()
    # A fresh head puts every weight logit near 0 (all pixels tie); give it decisive logits so the
    # comparison exercises both components of the readout.
    torch.nn.init.normal_(model.head.conv.weight, std=20.0)
    return model


@pytest.fixture(scope="module")
def dynamic_onnx(model: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "model.onnx"
    export_onnx(model, path, (64, 96), dynamic=True, provenance={"recipe_sha256": "abc"})
    return path


def test_dynamic_export_parity(model: torch.nn.Module, dynamic_onnx: Path) -> None:
    onnx.checker.check_model(str(dynamic_onnx), full_check=True)
    parity = verify_parity(model, dynamic_onnx, [(64, 96), (96, 64), (128, 160)], batch=2)
    assert parity.max_rel_error < 1e-4 and parity.max_conf_error < 1e-4 and parity.tie_fraction < 0.05


def test_outputs_and_opset(dynamic_onnx: Path) -> None:
    proto = onnx.load(str(dynamic_onnx))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    sess = ort.InferenceSession(str(dynamic_onnx), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["inverse_depth", "confidence"]
    inv, conf = sess.run(None, {"image": torch.randn(3, 3, 96, 128).numpy()})
    assert inv.shape == conf.shape == (3, 1, 96, 128)


def test_spec_round_trip(dynamic_onnx: Path) -> None:
    spec = read_onnx_spec(dynamic_onnx)
    assert spec.name == "efficientdepth-s" and spec.version == "0"
    assert spec.input_size == (64, 96) and spec.dynamic_shape and spec.size_multiple == 32
    assert spec.mean == (0.5, 0.5, 0.5) and spec.provenance["recipe_sha256"] == "abc"


def test_static_export(model: torch.nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "static.onnx"
    export_onnx(model, path, (64, 64), dynamic=False, name="efficientdepth-s-renamed", version="2")
    assert (read_onnx_spec(path).name, read_onnx_spec(path).version) == ("efficientdepth-s-renamed", "2")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape == [1, 3, 64, 64]
    assert verify_parity(model, path, [(64, 64)]).max_rel_error < 1e-4
    assert not list(tmp_path.glob("*.tmp")), "the atomic write left a temp file"


def test_a_checkpoint_and_its_export_score_alike_through_one_path(
    model: torch.nn.Module, dynamic_onnx: Path, tmp_path: Path
) -> None:
    """``edgedepth-train eval`` runs a model in memory (TorchBackend) and its ONNX file through the same
    Predictor: the scores agree to float precision."""
    from edgedepth_train.evaluate import evaluate_folder, onnx_predictor, torch_predictor
    from tests.tiny_models import write_random_rgbd

    write_random_rgbd(tmp_path / "rgbd", 2, (72, 96), seed=1)
    ours = evaluate_folder(torch_predictor(model, 96), tmp_path / "rgbd")
    exported = evaluate_folder(onnx_predictor(dynamic_onnx, 96), tmp_path / "rgbd")
    for a, b in zip(ours, exported, strict=True):
        assert a.model.abs_rel == pytest.approx(b.model.abs_rel, rel=1e-3, abs=1e-5)


def test_cli_exports_a_weights_only_checkpoint(model: torch.nn.Module, tmp_path: Path) -> None:
    """A checkpoint holding only the model's weights (a hand-made average, say) exports; its recipe is unknown."""
    from edgedepth_train.__main__ import main
    from edgedepth_train.checkpoint import save_checkpoint

    checkpoint = tmp_path / "average.safetensors"
    save_checkpoint(checkpoint, {"model": model.state_dict()}, metadata={"model": "efficientdepth-s"})
    out = tmp_path / "average.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out), "--size", "64", "96"]) == 0
    assert read_onnx_spec(out).provenance["recipe_sha256"] == ""
