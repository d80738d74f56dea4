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
from edgedepth.result import DepthResult
from edgedepth_train.__main__ import main
from edgedepth_train.evaluate import (
    FrameScore,
    ViewEnsemble,
    compare,
    evaluate_folder,
    onnx_predictor,
    report_dict,
)
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


class Affine:
    """A stand-in model: the image's grey level (a map that mirrors with the image) under its own scale and
    shift, as relative depth from different input sizes would be, plus a left-to-right ``ramp`` that does
    not mirror with the image."""

    def __init__(self, scale: float, shift: float, ramp: float = 0.0) -> None:
        self.scale, self.shift, self.ramp = scale, shift, ramp

    def predict(self, bgr: np.ndarray) -> DepthResult:
        grey = bgr.astype(np.float32).mean(axis=2) + self.ramp * np.arange(bgr.shape[1], dtype=np.float32)
        return DepthResult(self.scale * grey + self.shift, np.full(grey.shape, self.scale / 4, np.float32))


def test_a_view_ensemble_averages_normalised_views_in_the_first_views_units() -> None:
    bgr = np.random.default_rng(0).integers(0, 256, (24, 32, 3)).astype(np.uint8)
    first = Affine(2.0, 1.0)
    alone = first.predict(bgr).inverse_depth
    np.testing.assert_array_equal(ViewEnsemble([first]).predict(bgr).inverse_depth, alone)
    for members, flip in (
        ([first, Affine(0.5, -3.0)], False),
        ([first], True),
        ([first, Affine(7.0, 2.0)], True),
    ):
        result = ViewEnsemble(members, flip).predict(bgr)
        np.testing.assert_allclose(result.inverse_depth, alone, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(ViewEnsemble([first, Affine(1.0, 0.0)]).predict(bgr).confidence, 0.375)
    # Views that disagree are averaged: a model that adds a left-to-right ramp that is not in the image
    # predicts it mirrored in the mirrored view, and the average has none of it.
    ramp = Affine(2.0, 1.0, ramp=50.0)
    mirrored = ViewEnsemble([ramp], flip=True).predict(bgr).inverse_depth
    assert not np.allclose(mirrored, ramp.predict(bgr).inverse_depth)
    trend = np.polyfit(np.arange(32), (mirrored - alone).mean(axis=0), 1)[0]
    assert abs(trend) < 1.0  # the single view's ramp is 100 per column
    with pytest.raises(InputError, match="at least one"):
        ViewEnsemble([])


def test_eval_scores_several_input_sizes_and_mirrored_views(tmp_path: Path, rgbd: Path, capsys) -> None:
    model = make_tiny_depth_onnx(tmp_path / "tiny.onnx")
    report = tmp_path / "views.json"
    args = ["eval", "--onnx", str(model), "--data", str(rgbd), "--long-side", "64", "96", "--flip"]
    assert main([*args, "--json", str(report)]) == 0
    assert f"{rgbd} (input long side 64+96, and mirrored)" in capsys.readouterr().out
    views = ViewEnsemble([onnx_predictor(model, 64), onnx_predictor(model, 96)], flip=True)
    expected = [r.model.abs_rel for r in evaluate_folder(views, rgbd)]
    got = [f["model"]["abs_rel"] for f in json.loads(report.read_text())[str(rgbd)]["frames"]]
    assert got == pytest.approx(expected) and got != [
        r.model.abs_rel for r in evaluate_folder(onnx_predictor(model, 64), rgbd)
    ]
