"""The procedural synthetic RGB-D renderer: exact z-depth, determinism, scene kinds and texture sources."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import numpy as np
import pytest

from edgedepth.errors import DataError
from edgedepth_train.data import synthetic
from edgedepth_train.data.scene_model import Camera, Light, Material, Primitive, Scene, look_rotation, rot_z
from edgedepth_train.data.scenes import SCENE_KINDS, sample_scene
from edgedepth_train.data.synthetic import (
    SKY_DEPTH_M,
    RenderedFrame,
    SyntheticRGBD,
    render_frame,
    render_plane_depth,
    render_scene,
)

H, W = 48, 64  # small frames keep the file fast on a busy 2-core machine


def test_fronto_parallel_plane_depth_is_exact() -> None:
    # z-depth, not ray length: constant over the whole image even though the corner rays are longer
    depth = render_plane_depth(3.7, H, W, fx=50.0, fy=51.0, cx=31.2, cy=23.9)
    assert depth.shape == (H, W) and depth.dtype == np.float32
    np.testing.assert_allclose(depth, 3.7, rtol=1e-4)


@pytest.mark.parametrize("pitch_deg", [-30.0, 20.0])
def test_tilted_plane_depth_matches_formula(pitch_deg: float) -> None:
    fx, fy, cx, cy, dist = 60.0, 60.0, 32.5, 23.0, 2.5
    pitch = math.radians(pitch_deg)
    depth = render_plane_depth(dist, H, W, fx, fy, cx, cy, pitch=pitch)
    y = (np.arange(H) - cy) / fy  # plane normal (0, sin p, cos p) through (0, 0, dist) in the camera frame
    expected = np.broadcast_to((dist / (1 + math.tan(pitch) * y))[:, None], (H, W))
    assert np.ptp(expected) > 0.5  # the tilt really changes depth across the image
    np.testing.assert_allclose(depth, expected, rtol=1e-4)


def test_rotated_sphere_in_front_of_a_wall_matches_the_analytic_hit() -> None:
    fx, fy, cx, cy = 40.0, 40.0, 31.5, 23.5
    ahead = np.array([0.0, 1.0, 0.0])
    cam = Camera(np.zeros(3), look_rotation(ahead), fx, fy, cx, cy)
    c, r = np.array([0.3, 3.0, -0.2]), 0.6
    sphere = Primitive("sphere", c, np.full(3, r), (Material(),), rot_z(0.7))  # rotation must not move it
    wall = Primitive("plane", 5.0 * ahead, np.zeros(3), (Material(),), look_rotation(ahead))
    scene = Scene(
        "test", cam, [wall, sphere], [Light(np.array([0.0, 0.0, 3.0]), np.ones(3))], np.full(3, 0.2)
    )
    depth = render_scene(scene, H, W).depth_m
    xs, ys = np.meshgrid((np.arange(W) - cx) / fx, (np.arange(H) - cy) / fy)
    d = cam.rot @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])  # rays with unit camera z
    a, b = (d * d).sum(0), c @ d
    disc = b * b - a * (c @ c - r * r)
    t = np.where(disc >= 0, (b - np.sqrt(np.maximum(disc, 0))) / a, np.inf)
    assert np.isfinite(t).sum() > 100
    np.testing.assert_allclose(depth, np.minimum(t, 5.0).reshape(H, W), rtol=1e-4)


def _surface_distance(p: Primitive, pts: np.ndarray) -> np.ndarray:
    """|signed distance| from points (3, n) to the primitive's surface, written independently of the renderer."""
    q = p.rot.T @ (pts - p.center[:, None])
    if p.kind == "sphere":
        return np.abs(np.linalg.norm(q, axis=0) - p.size[0])
    if p.kind == "plane":
        return np.abs(q[2])
    if p.kind == "cylinder":
        e = np.stack([np.hypot(q[0], q[1]) - p.size[0], np.abs(q[2]) - p.size[2]])
    else:  # box, room (inside of a box) and quad (a box of zero thickness)
        e = np.abs(q) - p.size[:, None]
    return np.abs(np.linalg.norm(np.maximum(e, 0), axis=0) + np.minimum(e.max(0), 0))


@pytest.mark.parametrize("seed", range(8))
def test_every_depth_puts_its_pixel_on_a_surface(seed: int) -> None:
    """Exactness for all primitive kinds in random scenes: back-projected points lie on some primitive."""
    frame = render_frame(seed, H, W, texture_dir=None)
    scene = sample_scene(np.random.default_rng(seed), H, W)  # the scene render_frame drew for this seed
    fx, fy, cx, cy = frame.intrinsics
    xs, ys = np.meshgrid((np.arange(W) - cx) / fx, (np.arange(H) - cy) / fy)
    z = frame.depth_m.astype(np.float64).ravel()
    pts = scene.camera.pos[:, None] + scene.camera.rot @ (
        np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)]) * z
    )
    gap = np.min([_surface_distance(p, pts) for p in scene.prims], axis=0)
    on_surface = (gap <= 5e-5 * (1 + z)) | (z == SKY_DEPTH_M)  # float32 rounding: micrometres
    assert on_surface.all(), f"{(~on_surface).sum()} pixels off every surface, worst gap {gap.max():.2e} m"


def test_screen_space_culling_never_changes_depth(monkeypatch) -> None:
    culled = [render_frame(seed, H, W, texture_dir=None) for seed in range(10)]
    monkeypatch.setattr(synthetic, "_screen_rects", lambda prims, cam, h, w: [(0, h, 0, w)] * len(prims))
    for seed, frame in enumerate(culled):
        full = render_frame(seed, H, W, texture_dir=None)
        np.testing.assert_array_equal(frame.depth_m, full.depth_m)
        np.testing.assert_array_equal(frame.bgr, full.bgr)


def test_same_seed_gives_identical_frames_and_different_seeds_differ() -> None:
    a, b = render_frame(7, H, W, texture_dir=None), render_frame(7, H, W, texture_dir=None)
    np.testing.assert_array_equal(a.bgr, b.bgr)
    np.testing.assert_array_equal(a.depth_m, b.depth_m)
    assert a.intrinsics == b.intrinsics and a.scene == b.scene
    c = render_frame(8, H, W, texture_dir=None)
    assert not np.array_equal(a.depth_m, c.depth_m)
    assert not np.array_equal(a.bgr, c.bgr)


def test_frames_have_right_shapes_dtypes_and_positive_depth() -> None:
    for seed in range(4):
        f = render_frame(seed, H, W, texture_dir=None)
        assert isinstance(f, RenderedFrame)
        assert f.bgr.shape == (H, W, 3) and f.bgr.dtype == np.uint8
        assert f.depth_m.shape == (H, W) and f.depth_m.dtype == np.float32
        assert np.isfinite(f.depth_m).all() and (f.depth_m > 0).all() and (f.depth_m <= SKY_DEPTH_M).all()
        fx, fy, cx, cy = f.intrinsics
        assert (
            0.5 * W / math.tan(math.radians(75 / 2)) - 1e-6 <= fx <= 0.5 * W / math.tan(math.radians(45 / 2))
        )
        assert (
            abs(fy / fx - 1) < 0.05 and abs(cx - (W - 1) / 2) < 0.05 * W and abs(cy - (H - 1) / 2) < 0.05 * H
        )
        assert f.bgr.std() > 3  # not a blank image


def test_all_scene_kinds_occur_and_indoor_dominates() -> None:
    kinds = [render_frame(seed, 16, 16, texture_dir=None).scene for seed in range(40)]
    assert set(kinds) == set(SCENE_KINDS)
    assert sum(k != "outdoor" for k in kinds) > 0.7 * len(kinds)
    outdoor = next(s for s, k in enumerate(kinds) if k == "outdoor")
    assert render_frame(outdoor, H, W, texture_dir=None).depth_m.max() == pytest.approx(SKY_DEPTH_M)


def test_missing_texture_folder_raises_data_error_naming_it(tmp_path) -> None:
    missing = tmp_path / "no_such_images"
    with pytest.raises(DataError, match=re.escape(str(missing))):
        render_frame(0, H, W, texture_dir=missing)
    with pytest.raises(DataError, match=re.escape(str(tmp_path))):
        render_frame(0, H, W, texture_dir=tmp_path)  # exists but holds no images


def test_dataset_is_deterministic_and_map_style() -> None:
    ds = SyntheticRGBD(3, size=(H, W), seed=5, texture_dir=None)
    assert len(ds) == 3
    item = ds[1]
    assert set(item) == {"bgr", "depth_m", "source"} and item["source"] == "synthetic"
    frame = render_frame(5 * 1_000_003 + 1, H, W, texture_dir=None)
    np.testing.assert_array_equal(item["bgr"], frame.bgr)
    np.testing.assert_array_equal(item["depth_m"], frame.depth_m)
    with pytest.raises(IndexError):
        ds[3]


def test_real_photographs_as_textures(images_dir) -> None:
    photo = render_frame(3, H, W, texture_dir=images_dir)
    procedural = render_frame(3, H, W, texture_dir=None)
    assert photo.bgr.shape == (H, W, 3) and photo.bgr.dtype == np.uint8
    np.testing.assert_array_equal(photo.depth_m, procedural.depth_m)  # textures change colour, never geometry
    assert not np.array_equal(photo.bgr, procedural.bgr)
    assert len(SyntheticRGBD(2, size=(H, W), texture_dir=images_dir)[0]["bgr"]) == H


@pytest.mark.parametrize("scenes", ["procedural", "furniture"])
def test_renderer_fps_runs(scenes: str) -> None:
    """Both renderers report per-worker latency and total frames/s (no timing asserted)."""
    from edgedepth_train.data.assets import ASSET_DIR

    if scenes == "furniture" and not ASSET_DIR.is_dir():
        pytest.skip("sweethome3d-furniture is not installed (apt-get install sweethome3d-furniture)")
    cmd = [sys.executable, "-m", "edgedepth_train.renderer_fps", "--scenes", scenes, "--size", "64"]
    out = subprocess.run(
        [*cmd, "--frames", "6", "--workers", "1", "--texture-dir", "none"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert f"renderer_fps: {scenes}" in out.stdout and "total:" in out.stdout and "frames/s" in out.stdout
