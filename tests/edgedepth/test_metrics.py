"""edgedepth.metrics: a hand-computed example, exact alignment, masking, and the real-data baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgedepth import default_model_path
from edgedepth.errors import InputError
from edgedepth.metrics import (
    DepthMetrics,
    agreement_metrics,
    align_inverse_depth,
    bootstrap_skills,
    depth_metrics,
    fit_scale_shift,
    ground_plane_prior,
    group_report,
    interval,
    mean_metrics,
)
from edgedepth.rgbd import iter_rgbd

# The project's stated reference for the trivial ground-plane prior on the 9 real frames.
PRIOR_ABS_REL, PRIOR_DELTA1 = 0.304, 0.459


def test_hand_computed_example() -> None:
    # Prediction 0 on two pixels and 1 on two others; the ground truth's inverse depths there are
    # (0.55, 0.45) and (0.35, 0.15). Least squares maps each prediction level to its group's mean:
    # 0 -> 0.5 (depth 2) and 1 -> 0.25 (depth 4); both lie inside the gt range [1/0.55, 1/0.15].
    # |d - d*| / d* = |y - m| / m:  0.05/0.5 = 0.1, 0.1, 0.1/0.25 = 0.4, 0.4  -> AbsRel = 1.0 / 4 = 0.25.
    # max(d/d*, d*/d) = max(y/m, m/y): 1.1, 1.111, 1.4, 1.667 -> two below 1.25 -> delta1 = 0.5.
    # The third column has no measurement (0): its wild predictions must not enter the fit.
    pred = np.array([[0.0, 0.0, 100.0], [1.0, 1.0, -50.0]], dtype=np.float32)
    gt = np.array([[1 / 0.55, 1 / 0.45, 0.0], [1 / 0.35, 1 / 0.15, 0.0]])
    m = depth_metrics(pred, gt)
    assert m.abs_rel == pytest.approx(0.25, abs=1e-6)
    assert m.delta1 == 0.5
    assert m.valid_pixels == 4


def test_fit_recovers_scale_and_shift() -> None:
    rng = np.random.default_rng(0)
    pred = rng.uniform(0, 5, size=(20, 30))
    mask = rng.random((20, 30)) > 0.3
    target = np.where(mask, 3.0 * pred + 0.5, 1e6)  # masked-out pixels are garbage
    s, t = fit_scale_shift(pred, target, mask)
    assert s == pytest.approx(3.0, abs=1e-9)
    assert t == pytest.approx(0.5, abs=1e-9)


def test_alignment_recovers_metric_depth() -> None:
    rng = np.random.default_rng(1)
    gt = rng.uniform(0.5, 10.0, size=(24, 32))
    pred = (1.0 / gt - 0.05) * 7.0  # any affine map of inverse depth
    depth, valid = align_inverse_depth(pred.astype(np.float32), gt)
    assert valid.all()
    np.testing.assert_allclose(depth, gt, rtol=1e-5)


def test_affine_prediction_is_perfect() -> None:
    rng = np.random.default_rng(2)
    gt = rng.uniform(0.5, 10.0, size=(48, 64))
    pred = 0.3 / gt + 2.0  # the offset costs some float32 precision (predictions are float32)
    m = depth_metrics(pred, gt)
    assert m.abs_rel < 1e-5
    assert m.delta1 == 1.0
    assert m.valid_pixels == gt.size


def test_invalid_pixels_ignored() -> None:
    rng = np.random.default_rng(3)
    gt = rng.uniform(0.5, 10.0, size=(32, 32))
    pred = 2.0 / gt + 1.0
    holes = rng.random(gt.shape) < 0.3
    gt[holes] = 0.0
    gt[0, 0] = np.nan
    pred[holes] = rng.uniform(-100, 100, size=int(holes.sum()))  # garbage where there is no measurement
    m = depth_metrics(pred, gt)
    assert m.valid_pixels == int((~holes).sum()) - (0 if holes[0, 0] else 1)
    assert m.abs_rel < 1e-6
    assert m.delta1 == 1.0
    # An explicit mask excludes more pixels in the same way.
    extra = np.ones(gt.shape, dtype=bool)
    extra[:, :8] = False
    assert depth_metrics(pred, gt, mask=extra).valid_pixels < m.valid_pixels


def test_too_few_valid_pixels_raises() -> None:
    with pytest.raises(InputError):
        depth_metrics(np.ones((4, 4)), np.zeros((4, 4)))


def test_agreement_of_identical_maps() -> None:
    rng = np.random.default_rng(4)
    heavy_tailed = np.exp(rng.normal(size=(60, 80))).astype(np.float32)  # outliers beyond the percentiles
    m = agreement_metrics(heavy_tailed, heavy_tailed)
    assert m.abs_rel < 1e-9
    assert m.delta1 == 1.0
    noisy = heavy_tailed + rng.normal(scale=0.3, size=heavy_tailed.shape).astype(np.float32)
    assert agreement_metrics(noisy, heavy_tailed).abs_rel > 0.01


def test_mean_metrics_weighs_frames_equally() -> None:
    m = mean_metrics([DepthMetrics(0.1, 0.9, 10), DepthMetrics(0.3, 0.5, 30)])
    assert m.abs_rel == pytest.approx(0.2)
    assert m.delta1 == pytest.approx(0.7)
    assert m.valid_pixels == 40


def test_group_macro_average_and_skill_by_hand() -> None:
    def m(abs_rel: float, delta1: float = 0.5) -> DepthMetrics:
        return DepthMetrics(abs_rel, delta1, 1)

    # Group a: 3 frames (model 0.1, 0.2, 0.3; prior 0.2 each); group b: 1 frame (model 0.4, prior 0.2).
    rows = [("a", m(0.1), m(0.2)), ("a", m(0.2), m(0.2)), ("b", m(0.4, 0.9), m(0.2)), ("a", m(0.3), m(0.2))]
    rep = group_report(rows)
    assert list(rep.groups) == ["a", "b"] and rep.groups["a"].frames == 3
    assert rep.groups["a"].model.abs_rel == pytest.approx(0.2) and rep.groups["a"].ratio == pytest.approx(1.0)
    assert rep.macro.abs_rel == pytest.approx((0.2 + 0.4) / 2)  # not the frame mean (0.25)
    assert rep.macro.delta1 == pytest.approx((0.5 + 0.9) / 2)
    assert rep.skill == pytest.approx((1.0 * 2.0) ** 0.5)  # geometric mean of 1.0 and 2.0
    assert rep.as_dict()["groups"]["b"]["ratio"] == pytest.approx(2.0)
    with pytest.raises(InputError):
        group_report([])


def test_ground_plane_prior_on_real_frames(rgbd_dir: Path) -> None:
    per_frame = [depth_metrics(ground_plane_prior(*f.depth_m.shape), f.depth_m) for f in iter_rgbd(rgbd_dir)]
    assert len(per_frame) == 9
    m = mean_metrics(per_frame)
    assert m.abs_rel == pytest.approx(PRIOR_ABS_REL, abs=0.01)
    assert m.delta1 == pytest.approx(PRIOR_DELTA1, abs=0.01)


def test_eval_of_an_onnx_file_needs_no_torch(tmp_path: Path, rgbd_dir: Path) -> None:
    """`edgedepth-train eval --onnx` scores by group beside the prior without importing torch."""
    import json
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # any import of torch now fails\n"
        "from edgedepth_train.__main__ import main\n"
        f"sys.exit(main(['eval', '--onnx', {str(default_model_path())!r}, '--data', {str(rgbd_dir)!r}, "
        f"'--long-side', '128', '--json', {str(tmp_path / 'r.json')!r}]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "skill" in out.stdout and "rgbd" in out.stdout
    report = json.loads((tmp_path / "r.json").read_text())[str(rgbd_dir)]
    assert report["groups"]["rgbd"]["frames"] == 9 and 0 < report["skill"] < 1.5


def test_the_skill_bootstrap_resamples_frames_within_groups() -> None:
    def m(abs_rel: float) -> DepthMetrics:
        return DepthMetrics(abs_rel, 0.5, 1)

    rng = np.random.default_rng(3)
    rows = [("a", m(0.1 + 0.1 * rng.random()), m(0.2)) for _ in range(40)] + [("b", m(0.3), m(0.2))]
    skill = group_report(rows).skill
    draws = bootstrap_skills(rows, 500)
    low, high = interval(draws)
    assert draws.shape == (500,) and low < skill < high and high - low < 0.1
    assert not np.array_equal(draws, bootstrap_skills(list(reversed(rows)), 500))  # frame order matters
    assert np.array_equal(draws, bootstrap_skills(rows, 500))  # and nothing else: the seed is fixed
    # A group of one frame, or of identical frames, has nothing to resample: the draws are the skill itself.
    fixed = [("a", m(0.2), m(0.2)), ("a", m(0.2), m(0.2)), ("b", m(0.4), m(0.2))]
    assert np.allclose(bootstrap_skills(fixed, 50), group_report(fixed).skill)
    with pytest.raises(InputError, match="at least 1"):
        bootstrap_skills(rows, 0)
    with pytest.raises(InputError):
        bootstrap_skills([], 10)
