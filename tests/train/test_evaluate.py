"""Training evaluation goes through the runtime's Predictor: a model that outputs depth is inverted, its
outputs are read by name, and a checkpoint and its ONNX export are scored by one code path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgedepth import DepthEstimator
from edgedepth.artifact import OutputKind
from edgedepth.errors import InputError
from edgedepth.metrics import DepthMetrics, depth_metrics
from edgedepth_train.__main__ import main
from edgedepth_train.evaluate import FrameScore, compare, evaluate_folder, onnx_predictor, report_dict
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


def scores(model_abs_rel: list[float], group: str = "g") -> list[FrameScore]:
    prior = DepthMetrics(0.2, 0.5, 1)
    return [FrameScore(f"f{i}", group, DepthMetrics(a, 0.5, 1), prior) for i, a in enumerate(model_abs_rel)]


def test_two_candidates_are_compared_by_a_paired_bootstrap(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    base = list(0.1 + 0.05 * rng.random(30))
    better, noisy = [a * 0.8 for a in base], [a * (1 + 0.05 * rng.standard_normal()) for a in base]
    assert compare(scores(better), scores(base), 500)["verdict"] == "a"
    assert compare(scores(base), scores(better), 500)["verdict"] == "b"
    same = compare(scores(noisy), scores(base), 500)
    assert same["verdict"] == "undecided" and same["ratio_90"][0] < 1 < same["ratio_90"][1]
    with pytest.raises(InputError, match="different frames"):
        compare(scores(base), scores(base, group="h"), 100)

    # Through the command line, from the JSON reports that eval --json writes.
    # The same folder given from two working directories pairs by its name.
    for name, values, root in (("a", better, "../shared/data/rgbd"), ("b", base, "/data/rgbd")):
        (tmp_path / f"{name}.json").write_text(json.dumps({root: report_dict(scores(values), 100)}))
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--bootstrap", "300"]) == 0
    out = capsys.readouterr().out
    assert "a.json is better" in out and "ratio 90% interval" in out
    (tmp_path / "old.json").write_text('{"rgbd": {"skill": 0.8}}')  # a report from before per-frame scores
    assert main(["compare", str(tmp_path / "old.json"), str(tmp_path / "b.json")]) == 2
    assert "no per-frame scores" in capsys.readouterr().err


def test_eval_prints_the_skill_interval(tmp_path: Path, rgbd: Path, capsys) -> None:
    model = make_tiny_depth_onnx(tmp_path / "m.onnx")
    report = tmp_path / "r.json"
    assert main(["eval", "--onnx", str(model), "--data", str(rgbd), "--long-side", "64", "--bootstrap", "200",
                 "--json", str(report)]) == 0  # fmt: skip
    assert "skill 90% interval (200 bootstrap draws" in capsys.readouterr().out
    data = json.loads(report.read_text())[str(rgbd)]
    low, high = data["skill_interval_90"]
    assert low <= data["skill"] <= high and len(data["frames"]) == 3
