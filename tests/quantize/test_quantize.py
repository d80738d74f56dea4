"""Quantization: calibration through the runtime's preprocessing, real NNCF PTQ, the accuracy gate, FP16.

A small efficientdepth-s (ImageNet encoder, untrained decoder) is exported once at 64x64; calibration uses
a dozen generated frames and a lowered minimum, so the whole file runs in a few minutes on 2 cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch

from edgedepth import DepthEstimator, default_model_path
from edgedepth.artifact import Precision
from edgedepth.errors import InputError
from edgedepth.imageio import load_image
from edgedepth.model_file import read_onnx_spec
from edgedepth.preprocess import preprocess
from edgedepth_quantize import (
    GateConfig,
    PTQSettings,
    export_fp16,
    export_fp16_weights,
    gather_calibration,
    quantize_int8,
)
from edgedepth_quantize.calibration import CalibrationData, evenly_spaced, plan_calibration, resolve_sources
from edgedepth_quantize.cli import EXIT_GATE_FAILED, main
from edgedepth_quantize.errors import AccuracyGateError, CalibrationError
from edgedepth_quantize.gate import evaluate
from edgedepth_quantize.graph import head_scope, resolve_nodes
from edgedepth_train.export import export_onnx
from edgedepth_train.models.registry import build_model

PROVENANCE_KEYS = (
    "quantize.calibration_sha256",
    "quantize.nncf_version",
    "quantize.preset",
    "quantize.model_type",
    "quantize.fast_bias_correction",
    "quantize.ignored_scope",
    "quantize.subset_size",
)
FAST = {"num_frames": 12, "min_frames": 4}


def scene(rng: np.random.Generator, h: int = 72, w: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """A textured floor-and-boxes image and its depth in metres (near at the bottom, boxes in front)."""
    rows = np.linspace(6.0, 1.0, h, dtype=np.float32)[:, None].repeat(w, axis=1)
    depth = rows.copy()
    for _ in range(3):
        y, x = rng.integers(0, h - 20), rng.integers(0, w - 20)
        depth[y : y + 20, x : x + 20] = rng.uniform(0.8, 3.0)
    shade = (255 * (1.2 - depth / 7)).clip(0, 255)
    noise = rng.normal(0, 12, (h, w, 3))
    bgr = np.clip(shade[:, :, None] * np.array([0.8, 1.0, 0.9]) + noise, 0, 255).astype(np.uint8)
    return bgr, depth


@pytest.fixture(scope="module")
def fp32_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("fp32") / "eds-fp32.onnx"
    export_onnx(build_model("efficientdepth-s", pretrained=True).eval(), path, (64, 64), dynamic=True)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Generated images, a video and an RGB-D folder (distinct scenes for calibration and validation)."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    images, rgbd = root / "images", root / "rgbd"
    images.mkdir()
    for i in range(8):
        cv2.imwrite(str(images / f"img{i}.png"), scene(rng)[0])
    video = root / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 72))
    for _ in range(20):
        writer.write(scene(rng)[0])
    writer.release()
    write_rgbd(rgbd, [f"f{i}" for i in range(4)], rng)
    return {"images": images, "video": video, "rgbd": rgbd}


def write_rgbd(root: Path, names: list[str], rng: np.random.Generator) -> None:
    """An RGB-D folder of random scenes, one sub-folder per name (rgb.png and depth.npy)."""
    for name in names:
        frame = root / name
        frame.mkdir(parents=True)
        bgr, depth = scene(rng)
        cv2.imwrite(str(frame / "rgb.png"), bgr)
        np.save(frame / "depth.npy", depth)


@pytest.fixture(scope="module")
def int8_model(fp32_model: Path, data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("int8") / "eds-int8.onnx"
    report = quantize_int8(
        fp32_model, out, [data["images"], data["video"]], GateConfig(rgbd=str(data["rgbd"])), **FAST
    )
    assert report.passed and report.mode == "ground_truth"
    return out


# -- calibration ------------------------------------------------------------------------------------------
def test_calibration_goes_through_the_runtime_preprocessing(fp32_model: Path, data: dict[str, Path]) -> None:
    spec = read_onnx_spec(fp32_model)
    calib = gather_calibration([data["images"], data["video"]], spec, num_frames=12, min_frames=4)
    assert len(calib) == 12 and calib.input_hw == (64, 64) and not calib.skipped
    kinds = [item.source.kind.value for item in calib.items]
    assert kinds.count("images") == 8 and kinds.count("file") == 4  # stills in full, then the video's share
    assert [i.frame_index for i in calib.items if i.source.kind.value == "file"] == evenly_spaced(20, 4)
    first = calib.items[0]
    np.testing.assert_array_equal(calib.inputs[0], preprocess(load_image(first.path), spec, (64, 64))[0])
    again = gather_calibration([data["images"], data["video"]], spec, num_frames=12, min_frames=4)
    other = gather_calibration([data["images"], data["video"]], spec, 12, 4, input_size=(96, 64))
    assert calib.sha256 == again.sha256 != other.sha256
    assert next(calib.batches(5)).shape == (5, 3, 64, 64)


def test_too_few_frames_is_refused(fp32_model: Path, data: dict[str, Path]) -> None:
    spec = read_onnx_spec(fp32_model)
    with pytest.raises(CalibrationError, match=r"at least 50 frames.*images.*only 8"):
        gather_calibration([data["images"]], spec, num_frames=300, min_frames=50)


def test_corrupt_images_are_skipped_and_counted(
    fp32_model: Path, data: dict[str, Path], tmp_path: Path
) -> None:
    spec = read_onnx_spec(fp32_model)
    folder = tmp_path / "mixed"
    folder.mkdir()
    for src in sorted(data["images"].iterdir())[:5]:
        (folder / src.name).write_bytes(src.read_bytes())
    (folder / "truncated.png").write_bytes((data["images"] / "img0.png").read_bytes()[:200])
    (folder / "garbage.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    calib = gather_calibration([folder], spec, num_frames=20, min_frames=3)
    assert len(calib) == 5 and len(calib.skipped) == 2
    assert calib.summary()["skipped"] == 2
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("a.png", "b.jpg", "c.png"):
        (bad / name).write_bytes(b"corrupt")
    with pytest.raises(CalibrationError, match=r"0 usable frames, below the minimum of 2.*3 of 3"):
        gather_calibration([bad], spec, num_frames=10, min_frames=2)


def test_real_data_plan(images_dir: Path, video_dir: Path) -> None:
    # A folder of videos becomes one source per video.
    sources = [*resolve_sources(images_dir), *resolve_sources(video_dir)]
    assert [s.kind.value for s in sources] == ["images"] + ["file"] * 5
    plan = plan_calibration(sources, 300)
    assert len(plan) == 300
    assert sum(item.source.kind.value == "images" for item in plan) == len(sources[0].files)
    assert {item.source.name for item in plan} == {s.name for s in sources}  # every video contributes


# -- INT8 -------------------------------------------------------------------------------------------------
def test_head_scope_is_the_last_conv_and_the_readout(fp32_model: Path) -> None:
    model = onnx.load(str(fp32_model))
    names = head_scope(model)
    nodes = {n.name: n for n in model.graph.node}
    head = nodes[names[0]]
    assert head.op_type == "Conv" and "head" in head.input[1]
    assert {o.name for o in model.graph.output} <= {out for n in names for out in nodes[n].output}


def test_layers_to_keep_in_float_are_named_by_layer_or_node_and_checked(
    fp32_model: Path, data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = onnx.load(str(fp32_model))
    [node] = resolve_nodes(model, ["model.encoder.blocks.0._depthwise_conv"])
    assert resolve_nodes(model, [node, "model.encoder.blocks.0._depthwise_conv.weight"]) == [node]
    with pytest.raises(InputError, match=r"'model.encoder.blocks.0._depthwize_conv'.*close: model.encoder"):
        resolve_nodes(model, ["model.encoder.blocks.0._depthwize_conv"])
    # The shipped INT8 kept its first depthwise convolution in float under the exporter's node name.
    shipped = onnx.load(str(default_model_path()))
    assert resolve_nodes(shipped, ["model.encoder.blocks.0._depthwise_conv"]) == ["node_Conv_912"]
    # A misspelt name or a pattern that matches nothing stops the CLI before any calibration work.
    out = tmp_path / "never.onnx"
    common = [
        str(fp32_model),
        "-o",
        str(out),
        "--calib",
        str(data["images"]),
        *("--val-rgbd", str(data["rgbd"])),
    ]
    assert main(["int8", *common, "--ignore", "node_Conv_9999"]) == 2
    assert main(["int8", *common, "--ignore-pattern", "decoder_nothing"]) == 2
    err = capsys.readouterr().err
    assert "--ignore 'node_Conv_9999' names no node or layer" in err
    assert "--ignore-pattern 'decoder_nothing' matches no node" in err
    assert not out.exists()


def test_int8_passes_the_gate_and_its_spec_round_trips(int8_model: Path, fp32_model: Path) -> None:
    spec = read_onnx_spec(int8_model)
    assert spec.precision is Precision.INT8
    assert all(key in spec.provenance for key in PROVENANCE_KEYS)
    assert spec.provenance["quantize.calibration_frames"] == "12"
    assert spec.with_updates(precision=Precision.FP32, provenance={}) == read_onnx_spec(fp32_model)
    ops = {n.op_type for n in onnx.load(str(int8_model)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    report = json.loads(int8_model.with_suffix(".report.json").read_text())
    assert report["passed"] and report["details"]["written"]
    assert int8_model.stat().st_size < 0.5 * fp32_model.stat().st_size


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_both_cpu_backends_run_int8(int8_model: Path, fp32_model: Path, backend: str) -> None:
    image = scene(np.random.default_rng(5), 60, 100)[0]  # non-square: the INT8 graph keeps dynamic shapes
    with (
        DepthEstimator(int8_model, backend=backend) as est,
        DepthEstimator(fp32_model, backend=backend) as ref,
    ):
        assert est.backend_name == backend and est.spec.precision is Precision.INT8
        out, expected = est.predict(image).inverse_depth, ref.predict(image).inverse_depth
    assert out.shape == image.shape[:2] and np.isfinite(out).all()
    assert (
        np.corrcoef(out.ravel(), expected.ravel())[0, 1] > 0.5
    )  # untrained decoder: a sanity bound; the gate is the real check


def test_gate_failure_writes_no_model(fp32_model: Path, data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out" / "bad-int8.onnx"
    gate = GateConfig(rgbd=str(data["rgbd"]), max_drop=-1.0)  # AbsRel would have to fall by 1: impossible
    with pytest.raises(AccuracyGateError, match="NOT written"):
        quantize_int8(fp32_model, out, [data["images"]], gate, **FAST)
    assert sorted(p.name for p in out.parent.iterdir()) == ["bad-int8.report.json"]
    report = json.loads((out.parent / "bad-int8.report.json").read_text())
    assert not report["passed"] and report["reasons"][0].startswith("AbsRel changed by")


def test_gate_checks_the_skill_against_the_prior(
    fp32_model: Path, data: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "skill-int8.onnx"
    gate = GateConfig(rgbd=str(data["rgbd"]), max_drop=1.0, max_delta1_drop=1.0, max_skill_drop=-10.0)
    with pytest.raises(AccuracyGateError, match="skill changed by"):
        quantize_int8(fp32_model, out, [data["images"]], gate, **FAST)
    report = json.loads(out.with_suffix(".report.json").read_text())
    assert report["reference"]["skill"] > 0 and report["candidate"]["skill"] > 0
    assert report["delta_skill"] == pytest.approx(report["candidate"]["skill"] - report["reference"]["skill"])


def test_gate_judges_the_skill_on_its_own_folder(
    fp32_model: Path, data: dict[str, Path], tmp_path: Path
) -> None:
    """``skill_rgbd``: AbsRel from ``rgbd``, the skill from the other folder (as rgbd and rgbd_real for v2)."""
    other = tmp_path / "other"
    write_rgbd(other, [f"g{i % 2}_{i}" for i in range(3)], np.random.default_rng(7))
    both = evaluate(fp32_model, fp32_model, GateConfig(rgbd=str(data["rgbd"]), skill_rgbd=str(other)))
    only_main = evaluate(fp32_model, fp32_model, GateConfig(rgbd=str(data["rgbd"])))
    only_other = evaluate(fp32_model, fp32_model, GateConfig(rgbd=str(other)))
    assert both.reference["abs_rel"] == only_main.reference["abs_rel"]
    assert both.reference["skill"] == only_other.reference["skill"] != only_main.reference["skill"]
    assert both.details["skill_dataset"] == str(other) and both.passed
    assert both.details["backend"] == "onnxruntime"  # the report says which runtime judged the models


def test_gate_compares_the_flicker_on_video(
    fp32_model: Path, int8_model: Path, data: dict[str, Path], tmp_path: Path
) -> None:
    """A model that shimmers on video fails the gate even when its accuracy on still frames holds."""
    videos = (str(data["video"]),)
    same = evaluate(fp32_model, fp32_model, GateConfig(rgbd=str(data["rgbd"]), videos=videos))
    assert same.passed and same.reference["flicker"] == pytest.approx(same.candidate["flicker"])
    assert same.reference["flicker"] > 0
    loose = {"max_drop": 1.0, "max_delta1_drop": 1.0, "max_skill_drop": 1.0}
    strict = GateConfig(rgbd=str(data["rgbd"]), videos=videos, max_flicker_rise=-1.0, **loose)
    report = evaluate(fp32_model, int8_model, strict)  # the flicker would have to vanish
    assert not report.passed and len(report.reasons) == 1 and report.reasons[0].startswith("flicker on")
    assert report.details["flicker_per_video"][videos[0]]["candidate"] == report.candidate["flicker"]
    assert "flicker" in report.table().splitlines()[-2]
    missing = GateConfig(rgbd=str(data["rgbd"]), videos=(str(tmp_path / "missing.mp4"),))
    with pytest.raises(InputError, match=r"missing\.mp4"):
        evaluate(fp32_model, fp32_model, missing)


def test_agreement_gate_without_ground_truth(fp32_model: Path, data: dict[str, Path], tmp_path: Path) -> None:
    # No RGB-D folder: INT8 is scored by its agreement with FP32 on the calibration images. The untrained
    # decoder's low-contrast output makes INT8 noise relatively large (AbsRel, 1 - delta1 ~0.02), hence the looser limits.
    out = tmp_path / "agree-int8.onnx"
    gate = GateConfig(max_drop=0.1, max_delta1_drop=0.1)
    report = quantize_int8(fp32_model, out, [data["images"]], gate, **FAST)
    assert report.mode == "agreement" and report.passed and out.is_file()
    assert report.reference["abs_rel"] < 1e-9 and report.reference["delta1"] == 1.0
    assert 0 < report.candidate["abs_rel"] < 0.1 and len(report.frames) == 8


def test_accuracy_control_mode(fp32_model: Path, data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "ac-int8.onnx"
    settings = PTQSettings(accuracy_control=True, model_type="none", preset="mixed")
    report = quantize_int8(
        fp32_model, out, [data["images"]], GateConfig(rgbd=str(data["rgbd"])), settings, **FAST
    )
    assert report.passed and report.details["settings"]["accuracy_control"]
    provenance = read_onnx_spec(out).provenance
    assert provenance["quantize.accuracy_control"] == "true" and provenance["quantize.preset"] == "mixed"


def test_interrupted_quantization_leaves_no_file(
    fp32_model: Path, data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(self: CalibrationData):
        yield from self.inputs[:2]
        raise KeyboardInterrupt

    monkeypatch.setattr(CalibrationData, "__iter__", interrupted)
    out_dir = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        quantize_int8(
            fp32_model, out_dir / "m.onnx", [data["images"]], GateConfig(rgbd=str(data["rgbd"])), **FAST
        )
    assert not out_dir.exists() or not list(out_dir.iterdir())


def test_cli_exit_status_and_nothing_written_on_failure(
    fp32_model: Path, data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli-int8.onnx"
    common = ["int8", str(fp32_model), "-o", str(out), "--calib", str(data["images"]), "--frames", "8"]
    args = [*common, "--min-frames", "4", "--val-rgbd", str(data["rgbd"]), "--subset-size", "8"]
    assert main([*args, "--max-drop", "-1"]) == EXIT_GATE_FAILED
    assert not out.exists() and "accuracy gate failed" in capsys.readouterr().err
    assert main([*common, "--min-frames", "100"]) == 2
    assert "at least 100 frames" in capsys.readouterr().err


# -- FP16 -------------------------------------------------------------------------------------------------
def test_fp16_keeps_float32_io_and_passes_the_gate(
    fp32_model: Path, data: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "eds-fp16.onnx"
    report = export_fp16(fp32_model, out, GateConfig(rgbd=str(data["rgbd"])))
    assert report.passed and abs(report.delta_abs_rel) < 0.01
    model = onnx.load(str(out))
    io = [*model.graph.input, *model.graph.output]
    assert {v.type.tensor_type.elem_type for v in io} == {onnx.TensorProto.FLOAT}
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    spec = read_onnx_spec(out)
    assert spec.precision is Precision.FP16 and "fp16.source_sha256" in spec.provenance


def test_fp16_weights_halve_the_file_and_keep_float32_compute(
    fp32_model: Path, data: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "eds-fp16w.onnx"
    report = export_fp16_weights(fp32_model, out, GateConfig(rgbd=str(data["rgbd"])))
    assert report.passed and abs(report.delta_abs_rel) < 0.002
    assert out.stat().st_size < 0.6 * fp32_model.stat().st_size
    model = onnx.load(str(out))
    assert {n.op_type for n in model.graph.node if n.input[0].endswith("__fp16")} == {"Cast"}
    spec = read_onnx_spec(out)
    assert spec.precision is Precision.FP32 and "float16" in spec.provenance["weights.storage"]
    image = scene(np.random.default_rng(2), 96, 128)[0]
    with DepthEstimator(fp32_model) as a, DepthEstimator(out) as b:
        x, y = a.predict(image).inverse_depth, b.predict(image).inverse_depth
    # The readout picks the likelier of two modes, so a few near-tie pixels may switch mode (as in FP32 vs
    # ORT parity); everywhere else the weights' rounding moves the output by a fraction of a per cent.
    assert np.mean(np.abs(x - y) <= 2e-3 * np.abs(x).max()) >= 0.99


# -- the shipped default ----------------------------------------------------------------------------------
def test_shipped_int8_default_is_selected_and_runs() -> None:
    try:
        path = default_model_path("int8")
    except Exception as exc:
        pytest.skip(f"no shipped INT8 model: {exc}")
    spec = read_onnx_spec(path)
    assert spec.precision is Precision.INT8 and all(k in spec.provenance for k in PROVENANCE_KEYS)
    image = scene(np.random.default_rng(1), 120, 160)[0]
    for backend in ("onnxruntime", "openvino"):
        with DepthEstimator(precision="int8", backend=backend) as est:
            assert est.model_path == path
            assert np.isfinite(est.predict(image).inverse_depth).all()
