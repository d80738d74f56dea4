"""A sharded on-disk cache of rendered frames: render ahead once, train from it many times.

Layout of a cache folder:
- ``manifest.json``: the cache key (renderer version, scene kind, seed, size, views per scene, shard size,
  options) and, per finished shard, its frame count and sha256;
- ``shard-NNNNN.tar``: ``KKKKK.jpg`` (BGR, JPEG quality 95), ``KKKKK.depth.png`` (uint16 millimetres,
  0 = invalid) and ``KKKKK.json`` (intrinsics fx, fy, cx, cy and the view kind) per frame.

Shard ``i`` depends only on (seed, i), so rendering is resumable and deterministic: an interrupted render
continues with the shards it lacks, and a larger ``--frames`` later only adds shards. Shards and the manifest
are written atomically. A cache whose key differs from the request (another renderer version, size or seed)
is refused with the command that rebuilds it. When reading, a shard whose sha256 does not match is skipped,
counted and logged, never fatal.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import multiprocessing as mp
import os
import sys
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgedepth.errors import DataError
from edgedepth.fileio import atomic_open, atomic_write_bytes

from .rgbd import Sample, SkippingDataset

log = logging.getLogger(__name__)

#: Per scene kind; bump whenever the frames rendered for a given seed change (scene sampling, renderer,
#: encoding). ``furniture``: pyrender scenes of furniture models; ``procedural``: the ray-cast scenes of
#: ``synthetic.py``, pre-rendered so that nothing is generated while training.
RENDERER_VERSIONS = {"furniture": "furniture-2", "procedural": "procedural-1"}
RENDERER_VERSION = RENDERER_VERSIONS["furniture"]
SCENE_KINDS = tuple(RENDERER_VERSIONS)
#: What a frame of each scene kind is, as a training sample's ``source`` (appearance randomisation uses it).
SAMPLE_SOURCE = {"furniture": "furniture", "procedural": "synthetic"}
DEFAULT_CACHE_ROOT = Path("~/.cache/edgedepth/renders")
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class CacheKey:
    """What fixes the content of every shard; the frame count only decides how many shards exist."""

    scenes: str = "furniture"
    seed: int = 0
    size: tuple[int, int] = (240, 320)  # (height, width)
    views_per_scene: int = 7
    shard_frames: int = 64
    shadows: bool = True
    renderer: str = ""  # "": the scene kind's current version

    def __post_init__(self) -> None:
        if self.scenes not in RENDERER_VERSIONS:
            raise DataError(
                f"scenes={self.scenes!r} is not a scene kind; choose one of {', '.join(SCENE_KINDS)}"
            )
        if not self.renderer:
            object.__setattr__(self, "renderer", RENDERER_VERSIONS[self.scenes])

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "size": list(self.size)}

    def render_command(self, out: str | Path, frames: int) -> str:
        h, w = self.size
        flags = "" if self.shadows else " --no-shadows"
        return (
            f"edgedepth-train render --scenes {self.scenes} --frames {frames} --out {out} --seed {self.seed} "
            f"--size {h} {w} --views {self.views_per_scene}{flags}"
        )


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.tar"


def read_manifest(root: Path) -> dict[str, Any] | None:
    path = root / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        manifest = {"error": str(exc)}
    if not isinstance(manifest, dict) or not {"key", "shards"} <= manifest.keys():
        raise DataError(f"{path}: not a render-cache manifest; delete the folder to rebuild it")
    return manifest


def check_key(root: Path, found: dict[str, Any], wanted: CacheKey, frames: int) -> None:
    """Refuse a cache rendered with another key, naming each field that differs and the rebuild command."""
    diffs = [
        f"{k}: cache has {found.get(k)!r}, wanted {v!r}"
        for k, v in wanted.as_dict().items()
        if found.get(k) != v
    ]
    if diffs:
        raise DataError(
            f"render cache {root} is stale or was made with other settings ({'; '.join(diffs)}). Delete it and "
            f"rebuild it with `{wanted.render_command(root, frames)}`, or render into another --out folder"
        )


# ----------------------------------------------------------------------------------------------- writing

_WORKER: dict[str, Any] = {}


def _init_worker(key: CacheKey, asset_dir: str, texture_dir: str | None, workers: int) -> None:
    """Each furniture render process owns one OpenGL context, the catalogue and the room textures. Mesa's
    llvmpipe rasterises with one thread per core by default; with several render processes that
    oversubscribes. Procedural scenes need only the texture folder."""
    os.environ.setdefault("LP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    cv2.setNumThreads(1)
    _WORKER.update(key=key, texture_dir=texture_dir)
    if key.scenes == "procedural":
        return
    from .assets import load_catalogue
    from .gl_render import FurnitureRenderer, texture_images

    textures = texture_images(texture_dir, asset_dir)
    _WORKER.update(
        key=key,
        catalogue=load_catalogue(asset_dir),
        renderer=FurnitureRenderer(key.size[0], key.size[1], textures, asset_dir, shadows=key.shadows),
    )


def render_shard(index: int, out: Path) -> tuple[str, int, str, int, list[str]]:
    """Render and atomically write shard ``index``; returns (name, frames, sha256, scenes rendered, models
    skipped so far by this worker because their geometry or textures could not be used)."""
    key: CacheKey = _WORKER["key"]
    frames, scene_index = (_procedural_frames if key.scenes == "procedural" else _furniture_frames)(
        index, key
    )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for k, frame in enumerate(frames):
            depth_mm = np.clip(np.round(frame.depth_m * 1000.0), 0, 65535).astype(np.uint16)
            meta = {"intrinsics": list(frame.intrinsics), "view": frame.scene}
            members = {
                f"{k:05d}.jpg": cv2.imencode(".jpg", frame.bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes(),
                f"{k:05d}.depth.png": cv2.imencode(".png", depth_mm)[1].tobytes(),
                f"{k:05d}.json": json.dumps(meta).encode(),
            }
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    data = buf.getvalue()
    atomic_write_bytes(out / shard_name(index), data)
    skipped = sorted(_WORKER["renderer"].skipped_models) if "renderer" in _WORKER else []
    return shard_name(index), len(frames), hashlib.sha256(data).hexdigest(), scene_index, skipped


def _furniture_frames(index: int, key: CacheKey) -> tuple[list[Any], int]:
    """Views of furniture scenes ``(seed, index, 0..)`` until the shard is full; returns (frames, scenes)."""
    from .furniture_scenes import sample_furniture_scene

    renderer = _WORKER["renderer"]
    h, w = key.size
    frames: list[Any] = []
    scene_index = 0
    while len(frames) < key.shard_frames:
        if scene_index > 20 + 4 * key.shard_frames:
            raise DataError(f"shard {index}: {scene_index} scenes gave only {len(frames)} acceptable views")
        rng = np.random.default_rng([key.seed, index, scene_index])
        scene = sample_furniture_scene(rng, _WORKER["catalogue"], h, w, len(renderer.textures))
        frames += renderer.render(scene, key.views_per_scene)[: key.shard_frames - len(frames)]
        scene_index += 1
    return frames, scene_index


def _procedural_frames(index: int, key: CacheKey) -> tuple[list[Any], int]:
    """Frame f of the cache is the procedural dataset's item f (``SyntheticRGBD``), rendered at the cache's
    size: one scene per frame, so ``views_per_scene`` does not apply."""
    from .synthetic import render_frame

    first = index * key.shard_frames
    h, w = key.size
    frames = [
        render_frame(key.seed * 1_000_003 + f, h, w, _WORKER["texture_dir"])
        for f in range(first, first + key.shard_frames)
    ]
    return frames, len(frames)


def render_cache(
    out: str | Path, frames: int, key: CacheKey, workers: int = 2, asset_dir: str | None = None,
    texture_dir: str | None = None, progress: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Render (or finish rendering) ``frames`` frames into ``out``; returns the manifest."""
    from tqdm import tqdm

    from .assets import ASSET_DIR, library_paths

    if frames < 1:
        raise DataError(f"--frames must be >= 1, got {frames}")
    asset_dir = asset_dir or str(ASSET_DIR)
    if key.scenes == "furniture":
        library_paths(asset_dir)  # fail before starting processes when the asset package is absent
    root = Path(out).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(root) or {"key": key.as_dict(), "shards": {}}
    check_key(root, manifest["key"], key, frames)
    n_shards = math.ceil(frames / key.shard_frames)
    todo = [
        i
        for i in range(n_shards)
        if shard_name(i) not in manifest["shards"] or not (root / shard_name(i)).is_file()
    ]
    manifest["frames_requested"] = max(frames, int(manifest.get("frames_requested", 0)))
    done_frames = sum(s["frames"] for n, s in manifest["shards"].items() if int(n[6:11]) < n_shards)
    bar = tqdm(total=n_shards * key.shard_frames, initial=done_frames, unit="frame",
               disable=not progress or not sys.stderr.isatty(),  # a log gets a plain line per shard
               desc=f"render {key.scenes}", dynamic_ncols=True)  # fmt: skip
    ctx = mp.get_context("spawn")  # a GL context and OpenCV's thread pool must not be inherited by fork
    workers = max(1, workers)
    with ctx.Pool(workers, _init_worker, (key, asset_dir, texture_dir, workers)) as pool:
        for name, count, sha, scenes, skipped in pool.imap_unordered(
            _render_shard_star, [(i, root) for i in todo]
        ):
            manifest["shards"][name] = {"frames": count, "sha256": sha, "scenes": scenes}
            manifest["skipped_models"] = sorted(set(manifest.get("skipped_models", [])) | set(skipped))
            _write_manifest(root, manifest)
            bar.update(count)
            if progress and bar.disable:
                print(
                    f"render {key.scenes}: {name} done, {len(manifest['shards'])} of {n_shards} shards",
                    flush=True,
                )
    bar.close()
    _write_manifest(root, manifest)
    return manifest


def _render_shard_star(args: tuple[int, Path]) -> tuple[str, int, str, int, list[str]]:
    return render_shard(*args)


def _write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    manifest["shards"] = dict(sorted(manifest["shards"].items()))
    with atomic_open(root / MANIFEST) as fh:
        fh.write(json.dumps(manifest, indent=1).encode())


# ----------------------------------------------------------------------------------------------- reading


class CachedFrames(SkippingDataset):
    """Frames of a render cache as raw samples ``{"bgr", "depth_m", "source"}`` (``source``: ``furniture``, or
    ``synthetic`` for procedural scenes, as if rendered while training).

    Shards are verified by sha256 when opened: a corrupt or missing one is skipped and counted in
    ``skipped_shards``. Members are read by offset with ``os.pread``, so forked loader workers share nothing.
    ``limit`` keeps only the first frames, to measure how much the amount of rendered data matters.
    """

    def __init__(
        self,
        root: str | Path,
        expect: CacheKey | None = None,
        limit: int | None = None,
        scenes: str | None = None,
    ) -> None:
        super().__init__()
        self.root = Path(root).expanduser()
        manifest = read_manifest(self.root)
        if manifest is None:
            hint = (expect or CacheKey(scenes=scenes or "furniture")).render_command(self.root, 20000)
            raise DataError(
                f"render cache {self.root} does not exist or has no {MANIFEST}; render it with `{hint}`"
            )
        found = manifest["key"]
        kind = found.get("scenes", "furniture")
        if kind not in RENDERER_VERSIONS or found.get("renderer") != RENDERER_VERSIONS[kind]:
            key = CacheKey(**{**found, "size": tuple(found.get("size", (240, 320))), "renderer": ""})
            check_key(self.root, found, key, int(manifest.get("frames_requested", 20000)))
        if scenes is not None and found.get("scenes") != scenes:
            raise DataError(f"render cache {self.root} holds {found.get('scenes')!r} scenes, not {scenes!r}")
        self.source = SAMPLE_SOURCE[found.get("scenes", "furniture")]
        if expect is not None:
            check_key(self.root, found, expect, int(manifest.get("frames_requested", 20000)))
        self.skipped_shards: list[str] = []
        self.index: list[tuple[str, int, int, int, int]] = []  # shard, jpg offset, size, png offset, size
        for name, info in manifest["shards"].items():
            path = self.root / name
            try:
                data = path.read_bytes()
                if hashlib.sha256(data).hexdigest() != info["sha256"]:
                    raise DataError("sha256 mismatch")
                with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                    members = {m.name: m for m in tar.getmembers()}
                for k in range(int(info["frames"])):
                    jpg, png = members[f"{k:05d}.jpg"], members[f"{k:05d}.depth.png"]
                    self.index.append((name, jpg.offset_data, jpg.size, png.offset_data, png.size))
            except (OSError, DataError, KeyError, tarfile.TarError) as exc:
                self.skipped_shards.append(name)
                log.warning("render cache %s: skipping shard %s (%s)", self.root, name, exc)
        if not self.index:
            raise DataError(
                f"render cache {self.root} holds no readable shard ({len(self.skipped_shards)} skipped)"
            )
        self.index = self.index[:limit]  # the first ``limit`` frames in shard order: less data, same frames

    def __len__(self) -> int:
        return len(self.index)

    def _describe(self, index: int) -> str:
        return f"{self.root / self.index[index][0]} frame {index}"

    def _load(self, index: int) -> Sample:
        name, jpg_off, jpg_size, png_off, png_size = self.index[index]
        fd = os.open(self.root / name, os.O_RDONLY)
        try:
            jpg, png = os.pread(fd, jpg_size, jpg_off), os.pread(fd, png_size, png_off)
        finally:
            os.close(fd)
        bgr = cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR)
        depth = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
        if bgr is None or depth is None or depth.dtype != np.uint16 or depth.shape != bgr.shape[:2]:
            raise DataError("undecodable image or depth")
        return {"bgr": bgr, "depth_m": depth.astype(np.float32) * np.float32(1e-3), "source": self.source}
