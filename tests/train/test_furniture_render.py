"""The furniture data engine: catalogue parsing, mesh loading, scene layout and the pyrender renderer.

Everything renders a library written by the test (boxes from an OBJ/MTL) through the real pipeline;
the tests that read Debian's sweethome3d-furniture skip with the reason when that package is absent.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from edgedepth_train.data.assets import (
    ASSET_DIR,
    INSTALL_HINT,
    AssetError,
    load_catalogue,
    load_mesh,
    parse_catalogue,
)
from edgedepth_train.data.furniture_scenes import (
    FurnitureScene,
    Placed,
    Surface,
    ViewSpec,
    look_at,
    sample_furniture_scene,
    yaw_pose,
)
from tests.furniture_assets import catalogue_text, write_library


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_library(tmp_path_factory.mktemp("assets"))


def make_renderer(asset_dir: Path):
    from edgedepth_train.data.gl_render import FurnitureRenderer, RendererUnavailableError

    try:
        return FurnitureRenderer(96, 128, textures=[], asset_dir=asset_dir, shadows=True)
    except RendererUnavailableError as exc:
        pytest.skip(f"no offscreen OpenGL here: {exc}")


@pytest.fixture(scope="module")
def renderer(library: Path):
    r = make_renderer(library)
    yield r
    r.close()


def test_catalogue_parser_reads_sizes_tops_and_roles() -> None:
    items = parse_catalogue(catalogue_text(), "BlendSwap-CC-0")
    assert [i.name for i in items] == [
        "Table",
        "Chair",
        "Cup",
        "Bookcase",
        "Man",
        "Lamp",
        "Broken",
    ]  # #99 skipped
    table = items[0]
    assert table.size_m == pytest.approx((1.2, 0.75, 0.8)) and table.top_m == pytest.approx(0.75)
    assert table.model == "lib/box/box.obj" and table.licence == "Public domain \u00a9 tests"
    assert items[1].top_m == pytest.approx(0.9) and items[5].top_m is None  # no key: the height; -1: none
    assert [i.role for i in items] == ["table", "chair", "clutter", "floor", "person", "floor", "surface"]


def test_missing_library_names_the_install_command(tmp_path: Path) -> None:
    with pytest.raises(AssetError, match=INSTALL_HINT):
        load_catalogue(str(tmp_path))


def test_mesh_is_scaled_to_its_catalogue_size(library: Path) -> None:
    table = load_catalogue(str(library))[0]
    (part,) = load_mesh(table, str(library))
    lo, hi = part.bounds
    assert hi - lo == pytest.approx([1.2, 0.75, 0.8], abs=1e-6)
    assert lo[1] == pytest.approx(0.0) and (lo[0] + hi[0]) == pytest.approx(0.0)
    assert tuple(part.visual.face_colors[0][:3]) == (230, 26, 26)  # the MTL's Kd reached the mesh


def test_broken_model_is_an_asset_error(library: Path) -> None:
    broken = load_catalogue(str(library))[-1]
    with pytest.raises(AssetError, match="broken"):
        load_mesh(broken, str(library))


def _room_scene(placed: list[Placed], view: ViewSpec) -> FurnitureScene:
    grey = Surface((0.6, 0.6, 0.6))
    return FurnitureScene((4.0, 2.5, 5.0), grey, grey, grey, placed, [], 1.0, [view])


def test_plane_depth_is_exact(renderer) -> None:
    # Facing the wall z = 0 square-on from 2.0 m: every pixel's z-depth is 2.0 m.
    view = ViewSpec(
        look_at(np.array([2.0, 1.2, 2.0]), np.array([2.0, 1.2, 0.0])), 80.0, 80.0, 64.0, 48.0, "robot"
    )
    frame = renderer.render_view(renderer.build(_room_scene([], view)), view)
    assert frame.depth_m.shape == (96, 128) and frame.bgr.shape == (96, 128, 3)
    np.testing.assert_allclose(frame.depth_m, 2.0, rtol=1e-4)


def test_rgb_and_depth_align(renderer, library: Path) -> None:
    # A red box in front of the grey wall: its pixels are exactly the ones nearer than the empty room.
    from edgedepth_train.data.gl_render import room_depth

    box = load_catalogue(str(library))[1]  # the chair: a 45 x 45 x 90 cm box
    view = ViewSpec(
        look_at(np.array([2.0, 0.45, 2.0]), np.array([2.0, 0.45, 0.0])), 80.0, 80.0, 64.0, 48.0, "robot"
    )
    scene = _room_scene([Placed(box, yaw_pose(2.0, 0.0, 1.0, 0.0))], view)
    frame = renderer.render_view(renderer.build(scene), view)
    upper = slice(0, 44)  # above the horizon: the box against the wall, no floor
    near = (frame.depth_m < room_depth(scene.room, view, 96, 128) - 0.1)[upper]
    red = ((frame.bgr[:, :, 2].astype(int) - frame.bgr[:, :, 1]) > 60)[upper]
    assert near.sum() > 500
    np.testing.assert_allclose(
        frame.depth_m[upper][near], 2.0 - 1.0 - 0.225, rtol=1e-3
    )  # the box's front face
    assert (near == red).mean() > 0.99


def test_same_seed_same_frames_and_broken_models_are_skipped(renderer, library: Path) -> None:
    catalogue = load_catalogue(str(library))
    frames = []
    for _ in range(2):
        scene = sample_furniture_scene(np.random.default_rng(7), catalogue, 96, 128, candidate_views=12)
        scene.placed.append(Placed(catalogue[-1], yaw_pose(0.5, 0.0, 0.5, 0.0)))  # always one broken model
        frames.append(renderer.render(scene, 3))
    assert frames[0] and len(frames[0]) == len(frames[1])
    for a, b in zip(*frames, strict=True):
        np.testing.assert_array_equal(a.bgr, b.bgr)
        np.testing.assert_array_equal(a.depth_m, b.depth_m)
    assert any("broken" in key for key in renderer.skipped_models)


def test_layout_is_structured(library: Path) -> None:
    catalogue = load_catalogue(str(library))
    for seed in range(20):
        scene = sample_furniture_scene(np.random.default_rng(seed), catalogue, 96, 128)
        X, H, Z = scene.room
        for placed in scene.placed:
            x, y, z = placed.pose[:3, 3]
            assert -1e-9 <= x <= X and -1e-9 <= z <= Z and 0 <= y < H
            if placed.item.role == "clutter" and y > 0:  # on a top surface: at a holder's top height
                assert any(math.isclose(y, p.item.top_m or -1, abs_tol=1e-6) for p in scene.placed)
        for view in scene.views:
            eye = view.pose[:3, 3]
            assert 0 < eye[0] < X and 0 < eye[2] < Z and 0.3 <= eye[1] <= H
            down = view.pose[1, 2]  # the camera looks down its -z: this is minus its y component
            if view.kind == "arm":
                assert math.sin(math.radians(19)) < down < math.sin(math.radians(71))


@pytest.mark.skipif(not ASSET_DIR.is_dir(), reason=f"sweethome3d-furniture is not installed ({INSTALL_HINT})")
def test_real_asset_libraries(renderer) -> None:
    catalogue = load_catalogue()
    assert len(catalogue) > 500
    roles = {i.role for i in catalogue}
    assert {"table", "chair", "clutter", "person", "surface", "floor"} <= roles
    # One OpenGL context per process (pyrender's EGL contexts do not coexist): point it at the real assets.
    renderer.asset_dir = str(ASSET_DIR)
    scene = sample_furniture_scene(np.random.default_rng(0), catalogue, 96, 128)
    frames = renderer.render(scene, 2)
    assert frames and all((f.depth_m > 0).mean() > 0.98 for f in frames)
