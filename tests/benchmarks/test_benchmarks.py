"""The benchmark harness on tiny models: the JSON it writes, the reference ViT's shapes, the FLOP counter
against hand counts, the tegrastats parser and the command line. Nothing here asserts a timing."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgedepth.backends import BackendKind, backend_status
from edgedepth.errors import InputError, ModelLoadError
from edgedepth.model_file import read_onnx_spec
from edgedepth_benchmarks import __main__ as cli
from edgedepth_benchmarks.config import BenchmarkConfig, ModelEntry
from edgedepth_benchmarks.latency import TimedRunner, latency_stats, run_interleaved
from edgedepth_benchmarks.memory import (
    parse_tegrastats,
    peak_rss_mb,
    reset_peak_rss,
    rss_mb,
    summarize_tegrastats,
)
from edgedepth_benchmarks.reference import VIT_S14, ViTConfig, reference_hw, reference_onnx, vit_flops
from edgedepth_benchmarks.reference.flops import count_flops
from edgedepth_benchmarks.report import markdown, to_json, write_outputs
from edgedepth_benchmarks.suite import reference_parameters, run_suite
from tests.tiny_models import make_tiny_depth_onnx

REPO = Path(__file__).resolve().parents[2]
TINY_VIT = ViTConfig(width=32, depth=2, heads=2, mlp=64, base_grid=4)
CPU_BACKENDS = [k for k in (BackendKind.ONNXRUNTIME, BackendKind.OPENVINO) if backend_status(k).available]


# -- the reference model ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vit_s14():  # the torch module, built once (a few seconds)
    pytest.importorskip("torch")
    from edgedepth_benchmarks.reference.vit import build_vit

    return build_vit(VIT_S14)


def test_reference_vit_s14_shapes_and_parameters(vit_s14) -> None:
    import torch

    model = vit_s14
    params = sum(p.numel() for p in model.parameters())
    assert params == reference_parameters(BenchmarkConfig(models=(), backends=(), skip=frozenset({"stream"})))
    assert 21e6 < params < 23e6  # DINOv2 ViT-S/14: about 22 M
    with torch.no_grad():
        tokens = model(torch.zeros(2, 3, 56, 84))
    assert tuple(tokens.shape) == (2, (56 // 14) * (84 // 14) + 1, 384)


def test_vit_flops_formula_matches_torch_flop_counter(vit_s14) -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        vit_s14(torch.zeros(1, 3, 56, 70))
    assert counter.get_total_flops() == vit_flops((56, 70), 1, VIT_S14)


def test_reference_sizes_round_to_the_patch() -> None:
    assert [reference_hw((s, s)) for s in (256, 384, 512)] == [(252, 252), (378, 378), (518, 518)]


def test_tiny_reference_onnx_is_cached_runs_and_counts(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    path = reference_onnx(TINY_VIT, tmp_path)
    assert reference_onnx(TINY_VIT, tmp_path) == path  # the second call reads the cache
    assert len(list(tmp_path.iterdir())) == 1
    spec = read_onnx_spec(path)
    assert spec.size_multiple == 14 and spec.dynamic_shape and spec.output_name == "tokens"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch, hw in [(1, (28, 28)), (3, (42, 70))]:
        x = np.zeros((batch, 3, *hw), np.float32)
        (tokens,) = session.run(None, {"image": x})
        assert tokens.shape == (batch, (hw[0] // 14) * (hw[1] // 14) + 1, TINY_VIT.width)
        assert count_flops(path, (batch, 3, *hw)).flops == vit_flops(hw, batch, TINY_VIT)


# -- FLOPs -----------------------------------------------------------------------------------------------
def _hand_count_graph() -> onnx.ModelProto:
    """Conv 3->4 (3x3, pad 1), depthwise Conv 4 groups, a Shape-driven Reshape, MatMul 4->5, Gemm 5->2."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.random((4, 3, 3, 3), np.float32), "w1"),
        numpy_helper.from_array(rng.random((4, 1, 3, 3), np.float32), "w2"),
        numpy_helper.from_array(rng.random((4, 5), np.float32), "w3"),
        numpy_helper.from_array(rng.random((2, 5), np.float32), "w4"),
        numpy_helper.from_array(np.array([0], np.int64), "zero"),
        numpy_helper.from_array(np.array([1], np.int64), "one"),
        numpy_helper.from_array(np.array([4, -1], np.int64), "tail"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["c1", "w2"], ["c2"], pads=[1, 1, 1, 1], group=4),
        helper.make_node("Shape", ["c2"], ["shape"]),
        helper.make_node("Slice", ["shape", "zero", "one"], ["n"]),
        helper.make_node("Concat", ["n", "tail"], ["target"], axis=0),
        helper.make_node("Reshape", ["c2", "target"], ["flat"]),  # (N, 4, H*W): shape known only from data
        helper.make_node("Transpose", ["flat"], ["tokens"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["tokens", "w3"], ["m"]),  # (N, H*W, 5)
        helper.make_node("ReduceMean", ["m"], ["pooled"], axes=[1], keepdims=0),  # (N, 5)
        helper.make_node("Gemm", ["pooled", "w4"], ["y"], transB=1),  # (N, 2)
    ]
    graph = helper.make_graph(
        nodes,
        "hand_count",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize(("batch", "h", "w"), [(1, 8, 8), (3, 16, 24)])
def test_flop_counter_matches_a_hand_count(batch: int, h: int, w: int) -> None:
    count = count_flops(_hand_count_graph(), (batch, 3, h, w))
    conv = 2 * batch * 4 * h * w * 3 * 3 * 3
    depthwise = 2 * batch * 4 * h * w * 1 * 3 * 3
    matmul = 2 * batch * h * w * 4 * 5
    gemm = 2 * batch * 2 * 5
    assert count.by_op == {"Conv": conv + depthwise, "MatMul": matmul, "Gemm": gemm}
    assert count.flops == conv + depthwise + matmul + gemm
    assert count.complete


def test_flop_counter_rejects_a_wrong_rank() -> None:
    with pytest.raises(InputError, match="rank 4"):
        count_flops(_hand_count_graph(), (1, 3, 8))


# -- memory and timing helpers ---------------------------------------------------------------------------
TEGRASTATS_NANO = (
    "RAM 2448/3964MB (lfb 1x4MB) SWAP 0/1982MB (cached 0MB) CPU [12%@1479,3%@1479,off,off] "
    "EMC_FREQ 4%@1600 GR3D_FREQ 37%@921 APE 25 PLL@41.5C CPU@43C PMIC@100C GPU@41C AO@47.5C thermal@42.25C"
)
TEGRASTATS_ORIN = (
    "08-24-2023 13:48:20 RAM 5432/30536MB (lfb 5123x4MB) SWAP 0/15268MB (cached 0MB) CPU [0%@729,1%@729] "
    "EMC_FREQ 0%@2133 GR3D_FREQ 99%@[305,305] VIC_FREQ 729 APE 174 CV0@-256C CPU@45.5C Tboard@33C "
    "VDD_GPU_SOC 2392mW/2392mW VDD_CPU_CV 398mW/398mW"
)


def test_tegrastats_lines_parse() -> None:
    nano = parse_tegrastats(TEGRASTATS_NANO)
    assert nano["ram_used_mb"] == 2448 and nano["ram_total_mb"] == 3964
    assert nano["swap_used_mb"] == 0 and nano["swap_total_mb"] == 1982
    assert nano["gpu_load_percent"] == 37
    assert nano["cpu_load_percent"] == [12, 3, None, None]
    assert nano["temperatures_c"]["GPU"] == 41.0 and nano["temperatures_c"]["thermal"] == 42.25
    orin = parse_tegrastats(TEGRASTATS_ORIN)
    assert orin["ram_used_mb"] == 5432 and orin["gpu_load_percent"] == 99
    assert "CV0" not in orin["temperatures_c"]  # -256 C marks an absent sensor
    assert parse_tegrastats("no stats here") == {}
    summary = summarize_tegrastats([TEGRASTATS_NANO, TEGRASTATS_NANO.replace("2448/", "2600/"), "junk"])
    assert summary["samples"] == 2 and summary["ram_used_mb_peak"] == 2600
    assert summary["gpu_load_percent_mean"] == 37


def test_rss_readings() -> None:
    assert rss_mb() > 0
    reset = reset_peak_rss()
    assert isinstance(reset, bool)
    assert peak_rss_mb() >= rss_mb() * 0.99


def test_latency_stats_orders_percentiles() -> None:
    stats = latency_stats([5.0, 1.0, 2.0, 3.0, 4.0, 10.0])
    assert stats["min"] <= stats["p50"] <= stats["p90"] <= stats["p99"] <= stats["max"]
    assert stats["n"] == 6 and stats["p50"] == 3.5 and stats["iqr"] > 0 and stats["std"] > 0
    with pytest.raises(ValueError):
        latency_stats([])


def test_rounds_rotate_the_order_of_the_runners() -> None:
    calls: list[str] = []
    runners = [TimedRunner(k, lambda k=k: calls.append(k), runs=1, warmup=1) for k in "abc"]
    run_interleaved(runners, rounds=3)
    timed = [c for c in calls[3:]]  # after one warm-up call each; blocks may start with an untimed call
    firsts = [timed[i] for i in range(0, len(timed), len(timed) // 3)]
    assert firsts == ["a", "b", "c"]
    assert all(len(r.samples_ms) == 3 for r in runners)
    assert all(r.rss_growth_mb is not None for r in runners)


# -- the whole harness on the tiny model -----------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_document(tmp_path_factory: pytest.TempPathFactory) -> dict:
    pytest.importorskip("torch")
    folder = tmp_path_factory.mktemp("bench")
    model = make_tiny_depth_onnx(folder / "tiny.onnx")
    cfg = BenchmarkConfig(
        models=(ModelEntry(model, read_onnx_spec(model)),),
        backends=tuple(CPU_BACKENDS),
        sizes=((32, 32), (48, 64)),
        batches=(1, 2),
        threads=2,
        warmup=1,
        runs=3,
        rounds=2,
        memory_runs=2,
        stream_rounds=1,
        stream_runs=2,
        stream_frames=5,
        preprocess_runs=2,
        reference=TINY_VIT,
        cache_dir=folder / "cache",
    )
    return run_suite(cfg, "python -m benchmarks (test)", log=lambda message: None)


def _check_stats(stats: dict) -> None:
    assert set(stats) == {"p50", "p90", "p99", "mean", "std", "iqr", "min", "max", "n"}
    assert 0 < stats["min"] <= stats["p50"] <= stats["p90"] <= stats["p99"] <= stats["max"]
    assert stats["n"] > 0 and stats["mean"] > 0


@pytest.mark.slow
def test_harness_json_has_every_field(tiny_document: dict) -> None:
    doc = json.loads(to_json(tiny_document))  # valid JSON, no NaN
    for key in ("schema", "created", "command", "duration_s", "machine", "settings", "models", "reference"):
        assert key in doc
    assert {
        "cpu_model",
        "cpu_isa_flags",
        "cpu_logical_cores",
        "cpu_physical_cores",
        "os",
        "python",
        "versions",
    } <= set(doc["machine"])
    assert {"onnxruntime", "openvino", "tensorrt"} <= set(doc["machine"]["versions"])
    assert doc["settings"]["threads"] == 2 and doc["settings"]["backends"] == [k.value for k in CPU_BACKENDS]
    assert doc["reference"]["config"]["width"] == TINY_VIT.width and "fp32" in doc["reference"]["precision"]
    assert doc["peak"]["machine_gflops_per_s"] > 0
    assert len(doc["latency"]) == len(CPU_BACKENDS) * 2 * 2
    for row in doc["latency"]:
        assert "error" not in row, row
        _check_stats(row["latency_ms"])
        _check_stats(row["reference"]["latency_ms"])
        h, w = row["input_hw"]
        assert row["flops"] == 2 * row["batch"] * 2 * h * w * 27  # the tiny model: one 3x3 conv, 3 -> 2
        assert row["reference"]["input_hw"] == list(reference_hw((h, w)))
        assert row["reference"]["flops"] == vit_flops(reference_hw((h, w)), row["batch"], TINY_VIT)
        assert row["fps"] > 0 and row["gflops_per_s"] > 0 and row["fraction_of_peak"] > 0
        assert row["speed_ratio"] > 0 and row["goal_ratio"] == 12 and isinstance(row["goal_met"], bool)
        assert row["timer"].startswith("perf_counter")
        memory = row["memory"]
        assert "error" not in memory, memory
        assert memory["peak_rss_mb"] > 0 and memory["load_rss_mb"] > 0 and memory["runs"] == 2
        assert row["reference"]["memory"]["peak_rss_mb"] > 0
    for row in doc["stream"]:
        assert "error" not in row, row
        assert (
            row["stream_fps"] > 0 and row["model_only_fps"] > 0 and row["stream_fraction_of_model_only"] > 0
        )
        assert row["frames_per_pass"] == 5 and max(row["input_hw"]) == row["long_side"]
    assert {r["long_side"] for r in doc["stream"]} == {32, 64}
    cpu_rows = [r for r in doc["preprocess"] if r["device"] == "cpu"]
    assert len(cpu_rows) == 2 * 2
    for row in cpu_rows:
        _check_stats(row["latency_ms"])


@pytest.mark.slow
def test_outputs_are_written(tiny_document: dict, tmp_path: Path) -> None:
    written = write_outputs(tiny_document, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "results.json").read_text())["schema"] == tiny_document["schema"]
    table = (tmp_path / "out" / "results.md").read_text()
    assert table == markdown(tiny_document)
    assert "| backend | model | input | batch | p50 ms |" in table and "tiny-depth fp32" in table
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in str(written["png"])
    else:
        assert (tmp_path / "out" / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- the command line ------------------------------------------------------------------------------------
def test_module_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--help"], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert "--sizes" in out.stdout and "--reference-dims" in out.stdout


def test_register_adds_the_benchmark_subcommand() -> None:
    parser = argparse.ArgumentParser(prog="edgedepth")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["benchmark", "--sizes", "256", "--batches", "1"])
    assert args.func is cli.run_from_args and args.sizes == "256"


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--backends", "tensorflow"], "--backends.*'onnxruntime', 'openvino', 'tensorrt'"),
        (["--precisions", "fp64"], "--precisions.*'fp32', 'fp16', 'int8'"),
        (["--sizes", "250"], "multiples of 32"),
        (["--sizes", "big"], "--sizes"),
        (["--batches", "0"], "--batches"),
        (["--skip", "everything"], "stream, preprocess, memory, peak, reference"),
        (["--runs", "0"], "--runs"),
        (["--reference-dims", "384,12,5,1536"], "multiple of heads"),
        (["--backends", "tensorrt"], "tensorrt (is not available|needs at least one --engine)"),
    ],
)
def test_bad_options_name_the_option_and_the_choices(argv: list[str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        cli.config_from_args(_args(*argv))


def test_a_missing_model_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError):
        cli.config_from_args(_args("--model", str(tmp_path / "absent.onnx")))


@pytest.mark.slow
def test_cli_end_to_end_on_the_tiny_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    model = make_tiny_depth_onnx(tmp_path / "tiny.onnx")
    out = tmp_path / "results"
    argv = ["--model", str(model), "--backends", "onnxruntime", "--sizes", "32", "--batches", "1"]
    argv += [
        "--runs",
        "2",
        "--rounds",
        "1",
        "--warmup",
        "1",
        "--skip",
        "memory,stream",
        "--quiet",
        "--no-plot",
    ]
    argv += ["--reference-dims", "32,2,2,64", "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]
    assert cli.main(argv) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["command"].startswith("python -m benchmarks --model")
    assert len(doc["latency"]) == 1 and doc["latency"][0]["speed_ratio"] > 0
    assert {s["what"] for s in doc["skipped"]} >= {"memory", "stream"}
    assert (out / "results.md").is_file() and not (out / "latency.png").exists()
    assert "| onnxruntime | tiny-depth fp32 | 32² | 1 |" in capsys.readouterr().out


def test_only_runs_one_part_and_options_come_from_the_config() -> None:
    from edgedepth_benchmarks.__main__ import add_arguments
    from edgedepth_benchmarks.config import PARTS, counted_fields, parse_parts

    assert parse_parts("", "stream") == frozenset(PARTS) - {"stream"}
    assert parse_parts("memory,peak", None) == {"memory", "peak"}
    with pytest.raises(InputError, match="exclude each other"):
        parse_parts("memory", "stream")
    with pytest.raises(InputError, match="--only: warp unknown"):
        parse_parts("", "warp")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([])
    for f in counted_fields():  # one declaration per setting: the option, its default and its check
        assert getattr(args, f.name) == (f.default_factory() if callable(f.default_factory) else f.default)
    with pytest.raises(InputError, match="--stream-rounds=0 must be at least 1"):
        BenchmarkConfig(models=(), backends=(), stream_rounds=0)


def test_soak_samples_rss_threads_and_open_files(tmp_path: Path) -> None:
    from edgedepth_benchmarks.__main__ import main as bench

    out = tmp_path / "soak"
    assert bench(["soak", "--minutes", "0.05", "--backend", "onnxruntime", "--out", str(out)]) == 0
    doc = json.loads((out / "soak.json").read_text())
    assert doc["summary"]["frames"] > 0 and len(doc["samples"]) >= 2
    assert {"rss_mb", "threads", "open_files", "frames"} <= set(doc["samples"][0])


def test_flicker_compares_raw_and_stabilised_depth(tmp_path: Path) -> None:
    from edgedepth_benchmarks.__main__ import main as bench

    out = tmp_path / "flicker.json"
    from edgedepth.embedded import DEMO_CLIP

    assert (
        bench(
            ["flicker", str(DEMO_CLIP), "--max-frames", "12", "--backend", "onnxruntime", "--json", str(out)]
        )
        == 0
    )
    (row,) = json.loads(out.read_text())
    assert row["frames"] == 12 and 0 < row["static_fraction"] <= 1
    assert row["flicker_as_shown"]["raw"] > 0 and row["stabiliser_ms_median"] > 0


def test_figures_regenerates_the_demo_frame(tmp_path: Path) -> None:
    assert cli.main(["figures", "--out", str(tmp_path)]) == 0
    image = cv2.imread(str(tmp_path / "demo_frame.jpg"))
    assert image.shape == (240, 640, 3)
    assert image[:, 320:].std() > 10  # the depth half is not blank


def test_figures_puts_models_side_by_side_on_the_same_photos(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name, hw in (("a.jpg", (60, 80)), ("b.png", (90, 60))):
        cv2.imwrite(str(photos / name), rng.integers(0, 256, (*hw, 3), dtype=np.uint8))
    a = make_tiny_depth_onnx(tmp_path / "a.onnx")
    b = make_tiny_depth_onnx(tmp_path / "b.onnx")
    argv = ["figures", "--compare", str(a), str(b), "--images", str(photos), "--out", str(tmp_path / "look")]
    assert cli.main(argv) == 0
    sheet = cv2.imread(str(tmp_path / "look" / "compare.jpg"))
    assert sheet.shape == (28 + 240 + 480, 3 * 320, 3)  # header, a row per photo at 320 wide, three columns
    with pytest.raises(InputError, match="--images"):
        cli.main(["figures", "--compare", str(a), "--images", str(tmp_path / "none")])


def test_ros2_publishing_cost_is_measured_in_interleaved_rounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip(
        "cyclonedds", reason='the ros2 extra is not installed (pip install "edgedepth[ros2]")'
    )
    from edgedepth.embedded import DEMO_CLIP
    from edgedepth_benchmarks.__main__ import main as bench

    monkeypatch.setenv("ROS_DOMAIN_ID", "78")  # on loopback, multicast off (the benchmark's default)
    monkeypatch.delenv("CYCLONEDDS_URI", raising=False)
    out = tmp_path / "ros2.json"
    argv = ["ros2", str(DEMO_CLIP), "--max-frames", "12", "--rounds", "2", "--backend", "onnxruntime"]
    assert bench([*argv, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["frames"] == 12 and result["frame_hw"] == [256, 256]
    assert len(result["fps"]["plain"]) == len(result["fps"]["ros2"]) == 2 and result["ros2_over_plain"] > 0
