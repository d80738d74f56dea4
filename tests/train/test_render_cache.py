"""The render cache: write, read back, resume after an interruption, refuse a stale key, skip a corrupt shard."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgedepth.errors import DataError
from edgedepth_train.data.render_cache import MANIFEST, CachedFrames, CacheKey, render_cache, shard_name
from tests.furniture_assets import write_library

KEY = CacheKey(size=(48, 64), views_per_scene=3, shard_frames=3)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from edgedepth_train.data.gl_render import RendererUnavailableError, choose_platform

    try:
        choose_platform()
    except RendererUnavailableError as exc:
        pytest.skip(f"no offscreen OpenGL here: {exc}")
    library = write_library(tmp_path_factory.mktemp("assets"))
    out = tmp_path_factory.mktemp("cache")
    render_cache(out, 3, KEY, workers=1, asset_dir=str(library), progress=False)
    return out, library


def test_written_frames_read_back(cache: tuple[Path, Path]) -> None:
    out, _ = cache
    ds = CachedFrames(out, expect=KEY)
    assert len(ds) == 3 and not ds.skipped_shards
    sample = ds[0]
    assert sample["bgr"].shape == (48, 64, 3) and sample["source"] == "furniture"
    depth = sample["depth_m"]
    assert depth.shape == (48, 64) and depth.dtype == np.float32 and (depth > 0).mean() > 0.98
    np.testing.assert_allclose(depth * 1000, np.round(depth * 1000), atol=1e-3)  # stored in millimetres


def test_resume_adds_only_missing_shards_and_is_deterministic(
    cache: tuple[Path, Path], tmp_path: Path
) -> None:
    out, library = cache
    first = json.loads((out / MANIFEST).read_text())["shards"][shard_name(0)]
    before = (out / shard_name(0)).stat().st_mtime_ns
    render_cache(out, 6, KEY, workers=1, asset_dir=str(library), progress=False)  # grows to two shards
    manifest = json.loads((out / MANIFEST).read_text())
    assert set(manifest["shards"]) == {shard_name(0), shard_name(1)}
    assert manifest["shards"][shard_name(0)] == first and (out / shard_name(0)).stat().st_mtime_ns == before
    # An interrupted render: shard 1 never finished. Rendering again rebuilds exactly the same bytes.
    (out / shard_name(1)).unlink()
    render_cache(out, 6, KEY, workers=1, asset_dir=str(library), progress=False)
    assert json.loads((out / MANIFEST).read_text())["shards"] == manifest["shards"]
    assert len(CachedFrames(out)) == 6
    limited = CachedFrames(out, limit=4)
    assert len(limited) == 4 and limited.index == CachedFrames(out).index[:4]


def test_stale_cache_is_refused_with_the_rebuild_command(cache: tuple[Path, Path], tmp_path: Path) -> None:
    out, library = cache
    with pytest.raises(DataError, match=r"size: cache has \[48, 64\].*edgedepth-train render"):
        render_cache(
            out, 3, CacheKey(size=(96, 128), views_per_scene=3, shard_frames=3), asset_dir=str(library)
        )
    stale = tmp_path / "stale"
    stale.mkdir()
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["key"]["renderer"] = "furniture-0"
    (stale / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="renderer: cache has 'furniture-0'"):
        CachedFrames(stale)
    with pytest.raises(DataError, match="edgedepth-train render --scenes furniture"):
        CachedFrames(tmp_path / "missing")


def test_corrupt_shard_is_skipped_and_counted(cache: tuple[Path, Path], tmp_path: Path) -> None:
    out, _ = cache
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in out.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    data = bytearray((copy / shard_name(0)).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / shard_name(0)).write_bytes(bytes(data))
    ds = CachedFrames(copy)
    assert ds.skipped_shards == [shard_name(0)] and len(ds) == len(CachedFrames(out)) - 3


def test_procedural_scenes_prerender_to_the_frames_training_would_render(tmp_path: Path) -> None:
    """Frame f of a procedural cache is SyntheticRGBD's item f at the cache's size, stored as JPEG and
    millimetres; a synthetic source with ``cache`` reads it instead of rendering."""
    from edgedepth_train.data.stage_data import open_source
    from edgedepth_train.data.synthetic import SyntheticRGBD
    from edgedepth_train.recipe import SourceConfig

    key = CacheKey(scenes="procedural", seed=3, size=(48, 64), shard_frames=2)
    render_cache(tmp_path, 4, key, workers=1, texture_dir=None, progress=False)
    frames = CachedFrames(tmp_path, expect=key)
    online = SyntheticRGBD(10, size=(48, 64), seed=3, texture_dir=None)
    assert len(frames) == 4 and frames[0]["source"] == "synthetic"
    for f in range(4):
        cached, rendered = frames[f], online[f]
        valid = rendered["depth_m"] < 65.0
        np.testing.assert_allclose(cached["depth_m"][valid], rendered["depth_m"][valid], atol=6e-4)
        assert np.abs(cached["bgr"].astype(int) - rendered["bgr"]).mean() < 6.0  # JPEG (q95, 4:2:0 chroma)
    source = open_source(SourceConfig(kind="synthetic", texture_dir=None, cache=str(tmp_path)), (32, 32), 0)
    assert isinstance(source, CachedFrames) and len(source) == 4
    with pytest.raises(DataError, match="holds 'procedural' scenes, not 'furniture'"):
        CachedFrames(tmp_path, scenes="furniture")
    with pytest.raises(DataError, match="edgedepth-train render --scenes procedural"):
        open_source(SourceConfig(kind="synthetic", cache=str(tmp_path / "missing")), (32, 32), 0)
    with pytest.raises(DataError, match="'fractal' is not a scene kind; choose one of furniture, procedural"):
        CacheKey(scenes="fractal")


def test_the_render_command_offers_every_scene_kind() -> None:
    from edgedepth_train import __main__ as cli
    from edgedepth_train.data.render_cache import SCENE_KINDS

    assert cli.SCENE_KINDS == SCENE_KINDS
