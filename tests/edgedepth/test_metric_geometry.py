"""Metric scale from points and from the camera's height, intrinsics, point clouds and PLY files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from edgedepth.clouds import describe_fit
from edgedepth.errors import InputError
from edgedepth.intrinsics import Intrinsics
from edgedepth.metric import fit_camera_height, fit_points, floor_normal
from edgedepth.pointcloud import point_cloud, read_ply, write_ply

K = Intrinsics(300.0, 300.0, 159.5, 119.5, 320, 240)


def scene(height: float = 0.8, pitch_deg: float = 10.0) -> np.ndarray:
    """Depth of a floor ``height`` below a camera pitched down by ``pitch_deg``, with a box standing on it and
    a wall 6 m ahead (the rows that see no floor)."""
    x, y = K.rays()
    n = floor_normal(pitch_deg)
    along = n[0] * x + n[1] * y + n[2]
    with np.errstate(divide="ignore"):
        depth = np.where(along > 1e-6, height / along, np.inf)
    depth = np.minimum(depth, 6.0)
    depth[60:140, 120:200] = np.minimum(depth[60:140, 120:200], 1.5)  # a box in front
    return depth


def test_points_recover_a_known_scale_and_shift_exactly_and_with_30_percent_outliers() -> None:
    depth = scene()
    inv = (1.0 / depth - 0.05) / 2.5  # a relative prediction: metric inverse depth = 2.5 r + 0.05
    rng = np.random.default_rng(0)
    u, v = rng.integers(0, 320, 100), rng.integers(0, 240, 100)
    d = 1.0 / (2.5 * inv[v, u] + 0.05)
    exact = fit_points(inv, np.stack([u, v, d], axis=1))
    assert exact.scale == pytest.approx(2.5, rel=1e-6) and exact.shift == pytest.approx(0.05, abs=1e-6)
    assert exact.inliers == 100 and exact.error < 1e-6
    noisy = d.copy()
    bad = rng.choice(100, 30, replace=False)
    noisy[bad] *= rng.uniform(1.5, 4.0, 30)  # 30% wrong depths
    robust = fit_points(inv, np.stack([u, v, noisy], axis=1))
    assert robust.scale == pytest.approx(2.5, rel=0.01) and robust.inliers == 70
    assert np.nanmax(np.abs(robust.depth(inv) - depth) / depth) < 0.01


@pytest.mark.parametrize(
    ("points", "match"),
    [
        ([[10, 10, 1.0], [400, 10, 1.0], [20, 20, 2.0]], r"points\[1\].*outside the 320x240"),
        ([[10, 10, 1.0], [20, 20, float("nan")], [30, 30, 2.0]], r"points\[1\] has depth nan"),
        ([[10, 10, 1.0], [20, 20, 2.0]], "at least 3"),
        ([[1, 2]], r"\(N, 3\)"),
    ],
)
def test_bad_points_name_the_argument(points: list, match: str) -> None:
    with pytest.raises(InputError, match=match):
        fit_points(np.ones((240, 320)), np.array(points, dtype=float))


@pytest.mark.parametrize("pitch_deg", [0.0, 10.0, 25.0])
def test_the_camera_height_gives_metric_depth_within_2_percent(pitch_deg: float) -> None:
    depth = scene(0.8, pitch_deg)
    inv = (1.0 / depth - 0.1) / 3.0  # with a shift: the pitch is needed
    fit = fit_camera_height(inv, K, 0.8, pitch_deg=pitch_deg)
    floor = np.isfinite(depth) & (depth < 6.0)
    floor[60:140, 120:200] = False
    recovered = fit.depth(inv)
    assert np.nanmedian(np.abs(recovered[floor] - depth[floor]) / depth[floor]) < 0.02
    # The camera's height above the floor plane fitted in the recovered cloud.
    pts, _ = point_cloud(np.where(floor, recovered, np.nan), K)
    n = floor_normal(pitch_deg)
    assert float(np.median(pts @ n)) == pytest.approx(0.8, rel=0.02)
    no_shift = fit_camera_height(1.0 / depth / 3.0, K, 0.8)  # without a pitch, only for shift-free outputs
    assert no_shift.shift == 0 and no_shift.scale == pytest.approx(3.0, rel=0.02)
    with pytest.raises(InputError, match="height_m"):
        fit_camera_height(inv, K, -0.8)


def test_a_fit_that_puts_the_far_scene_beyond_infinity_says_how_much() -> None:
    depth = scene(0.8, 10.0)
    inv = (1.0 / depth - 0.1) / 3.0
    assert fit_camera_height(inv, K, 0.8, pitch_deg=10.0).beyond == 0.0
    wall = depth >= 6.0
    bent = np.where(wall, -0.1, inv)  # the prediction bends the far wall past the floor's horizon
    fit = fit_camera_height(bent, K, 0.8, pitch_deg=10.0)
    assert fit.beyond == pytest.approx(wall.mean(), abs=1e-9) and fit.beyond > 0.1
    assert np.isnan(fit.depth(bent)[wall]).all()
    assert f"WARNING: {fit.beyond:.1%} of the pixels" in describe_fit(fit)
    assert "WARNING" not in describe_fit(fit_camera_height(inv, K, 0.8, pitch_deg=10.0))


def test_intrinsics_scale_with_the_image_and_refuse_another_aspect(tmp_path: Path) -> None:
    half = K.scaled_to(160, 120)
    assert (half.fx, half.cx, half.cy) == (150.0, 79.5, 59.5)
    with pytest.raises(InputError, match=r"320x240 do not fit a 320x180 image"):
        K.scaled_to(320, 180)
    fov = Intrinsics.from_fov(90.0, 640, 480)
    assert fov.fx == pytest.approx(320.0)
    (tmp_path / "cam.json").write_text(
        json.dumps({"K": [[500, 0, 320], [0, 500, 240], [0, 0, 1]], "width": 640, "height": 480})
    )
    assert Intrinsics.load(tmp_path / "cam.json").fy == 500.0
    (tmp_path / "cam.yaml").write_text(
        "%YAML:1.0\nimage_width: 640\nimage_height: 480\ncamera_matrix: !!opencv-matrix\n   rows: 3\n   cols: 3\n"
        "   dt: d\n   data: [ 520., 0., 319.5, 0., 521., 239.5, 0., 0., 1. ]\n"
    )
    loaded = Intrinsics.load(tmp_path / "cam.yaml")
    assert (loaded.fx, loaded.fy, loaded.width) == (520.0, 521.0, 640)
    (tmp_path / "bad.yaml").write_text("%YAML:1.0\nimage_width: 640\nimage_height: 480\n")
    with pytest.raises(InputError, match=r"bad\.yaml: missing key\(s\) camera_matrix \(or K"):
        Intrinsics.load(tmp_path / "bad.yaml")
    (tmp_path / "bad.json").write_text(json.dumps({"fx": 1, "fy": 1, "cx": 0}))
    with pytest.raises(
        InputError,
        match=r"bad\.json: missing key\(s\) camera_matrix \(or K, or fx, fy, cx, cy\), image_width, image_height",
    ):
        Intrinsics.load(tmp_path / "bad.json")


def test_point_cloud_and_ply_round_trip(tmp_path: Path) -> None:
    import trimesh

    depth = np.full((240, 320), 2.0, np.float32)
    depth[0, 0], depth[0, 1] = np.nan, -1.0
    image = np.zeros((240, 320, 3), np.uint8)
    image[..., 2] = 200  # red in BGR
    confidence = np.ones_like(depth)
    confidence[100, :] = 0.1
    pts, colors = point_cloud(depth, K, image_bgr=image, confidence=confidence, min_confidence=0.5)
    assert pts.shape == (240 * 320 - 2 - 320, 3) and colors is not None and (colors == [200, 0, 0]).all()
    assert np.allclose(pts[:, 2], 2.0) and pts[:, 0].min() == pytest.approx((0 - 159.5) * 2.0 / 300.0)
    path = write_ply(tmp_path / "cloud.ply", pts, colors)
    back, back_colors = read_ply(path)
    assert np.array_equal(back, pts) and back_colors is not None and np.array_equal(back_colors, colors)
    cloud = trimesh.load(path)  # another reader
    assert len(cloud.vertices) == len(pts) and np.allclose(cloud.vertices, pts, atol=1e-6)
    assert (np.asarray(cloud.colors)[:, :3] == [200, 0, 0]).all()
    assert [p.name for p in tmp_path.iterdir()] == ["cloud.ply"]
    assert math.isfinite(float(pts.sum()))
