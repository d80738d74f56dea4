"""The render cache: write, read back, resume after an interruption, refuse a stale key, skip a corrupt shard."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from furniture_assets import write_library

from edgedepth.errors import DataError
from edgedepth_train.data.render_cache import MANIFEST, CachedFrames, CacheKey, render_cache, shard_name

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
