"""Rasterise furnished rooms with pyrender (OpenGL) offscreen: RGB plus exact metric z-depth per pixel.

Offscreen contexts come from EGL (Mesa's llvmpipe: CPU only, no display) or, where EGL is missing, OSMesa.
The choice is made once per process, before OpenGL is imported; ``PYOPENGL_PLATFORM`` overrides it. Depth
is pyrender's linearised z-buffer: the z-distance along the optical axis in metres, the convention of the
procedural renderer; pixels that see nothing are 0 (invalid).

One scene is built once and rendered from several viewpoints, which is what makes this fast: building and
uploading the meshes costs more than a view. Views where a near wall or one surface fills the frame are
rejected (depth nearly constant, or mostly closer than 0.3 m).
"""

from __future__ import annotations

import ctypes.util
import functools
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .assets import ASSET_DIR, AssetError, FurnitureItem, load_mesh
from .furniture_scenes import FurnitureScene, Surface, ViewSpec
from .synthetic import RenderedFrame

PLATFORMS = ("egl", "osmesa")
ZNEAR_M, ZFAR_M = 0.05, 40.0
SHADOW_MAP_SIZE = 512
_TEX_MAX_SIDE = 512


class RendererUnavailableError(AssetError):
    """No offscreen OpenGL context could be made (neither EGL nor OSMesa)."""


def choose_platform() -> str:
    """EGL if its library is present, else OSMesa; ``PYOPENGL_PLATFORM`` wins when set."""
    chosen = os.environ.get("PYOPENGL_PLATFORM")
    if chosen:
        return chosen
    for name, lib in (("egl", "EGL"), ("osmesa", "OSMesa")):
        if ctypes.util.find_library(lib):
            os.environ["PYOPENGL_PLATFORM"] = name
            return name
    raise RendererUnavailableError(
        "no offscreen OpenGL: neither libEGL nor libOSMesa was found. Install Mesa's EGL "
        "(`apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri`) or OSMesa (`apt-get install libosmesa6`), "
        "and the Python side with `pip install -e .[train]` (pyrender, trimesh)"
    )


def _import_pyrender() -> Any:
    platform = choose_platform()
    if not hasattr(np, "infty"):  # pyrender 0.1.45 still uses the alias that NumPy 2 removed
        np.infty = np.inf  # type: ignore[attr-defined]
    try:
        import pyrender
        import pyrender.light
        import pyrender.renderer
    except ImportError as exc:
        raise RendererUnavailableError(
            f"pyrender cannot be imported ({exc}); install it with `pip install -e .[train]`"
        ) from None
    # pyrender's 2048x2048 shadow maps cost 4x a whole 320x240 view on a CPU rasteriser; 512 texels over a
    # room of a few metres is about 1 cm, finer than a pixel of the views we render.
    pyrender.light.SHADOW_TEX_SZ = pyrender.renderer.SHADOW_TEX_SZ = SHADOW_MAP_SIZE
    return pyrender, platform


def texture_images(texture_dir: str | Path | None, asset_dir: str | Path = ASSET_DIR) -> list[np.ndarray]:
    """Room textures as RGB arrays: the photographs in ``texture_dir`` plus the libraries' own JPEG textures."""
    import zipfile

    from .assets import library_paths

    images: list[np.ndarray] = []
    if texture_dir is not None:
        images += [
            cv2.imread(str(p))
            for p in sorted(Path(texture_dir).glob("*"))
            if p.suffix.lower() in (".jpg", ".png")
        ]
    for path in library_paths(asset_dir):
        with zipfile.ZipFile(path) as zf:
            for name in sorted(n for n in zf.namelist() if n.lower().endswith((".jpg", ".jpeg"))):
                if zf.getinfo(name).file_size > 20_000:  # skip icons and tiny swatches
                    images.append(cv2.imdecode(np.frombuffer(zf.read(name), np.uint8), cv2.IMREAD_COLOR))
    out = []
    for img in images:
        if img is None:
            continue
        s = _TEX_MAX_SIDE / max(img.shape[:2])
        img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else img
        out.append(np.ascontiguousarray(img[:, :, ::-1]))
    return out


def _quad(corners: np.ndarray, tile_m: float) -> tuple[np.ndarray, ...]:
    """Two triangles over four corners (counter-clockwise seen from the room), UVs in metres / tile."""
    e1, e2 = corners[1] - corners[0], corners[3] - corners[0]
    normal = np.cross(e1, e2)
    normal /= np.linalg.norm(normal)
    uv = np.array(
        [[0, 0], [np.linalg.norm(e1), 0], [np.linalg.norm(e1), np.linalg.norm(e2)], [0, np.linalg.norm(e2)]]
    )
    return (
        corners.astype(np.float32),
        np.tile(normal, (4, 1)).astype(np.float32),
        (uv / tile_m).astype(np.float32),
    )


class FurnitureRenderer:
    """Renders :class:`FurnitureScene` objects at a fixed size; one per process (it owns a GL context)."""

    def __init__(
        self, height: int, width: int, textures: list[np.ndarray], asset_dir: str | Path = ASSET_DIR,
        shadows: bool = True,
    ) -> None:  # fmt: skip
        self.pyrender, self.platform = _import_pyrender()
        self.height, self.width, self.textures = height, width, textures
        self.asset_dir = str(asset_dir)
        self.shadows = shadows
        self.skipped_models: set[str] = set()
        try:
            self.gl = self.pyrender.OffscreenRenderer(width, height)
        except Exception as exc:
            other = "osmesa" if self.platform == "egl" else "egl"
            raise RendererUnavailableError(
                f"cannot create an offscreen OpenGL context with {self.platform} ({type(exc).__name__}: {exc}); "
                f"try PYOPENGL_PLATFORM={other}, or install Mesa: `apt-get install libegl1 libegl-mesa0 "
                "libgl1-mesa-dri libosmesa6`"
            ) from None

    def close(self) -> None:
        self.gl.delete()

    # -- scene construction ---------------------------------------------------------------------------
    @functools.lru_cache(maxsize=256)  # noqa: B019 - one renderer per process, kept for its lifetime
    def _texture(self, index: int) -> Any:
        pr = self.pyrender
        return pr.Texture(source=self.textures[index], source_channels="RGB", sampler=pr.Sampler())

    def _surface_mesh(self, corners: list[np.ndarray], surface: Surface) -> Any:
        pr = self.pyrender
        pos, nrm, uv = zip(*(_quad(np.asarray(c, float), surface.tile_m) for c in corners), strict=True)
        indices = np.concatenate([np.array([[0, 1, 2], [0, 2, 3]]) + 4 * i for i in range(len(corners))])
        material = pr.MetallicRoughnessMaterial(
            baseColorFactor=[*surface.colour, 1.0] if surface.texture is None else [1.0, 1.0, 1.0, 1.0],
            baseColorTexture=None if surface.texture is None else self._texture(surface.texture),
            metallicFactor=0.0, roughnessFactor=0.9,
        )  # fmt: skip
        prim = pr.Primitive(
            positions=np.concatenate(pos), normals=np.concatenate(nrm), texcoord_0=np.concatenate(uv),
            indices=indices, material=material,
        )  # fmt: skip
        return pr.Mesh([prim])

    @functools.lru_cache(maxsize=192)  # noqa: B019
    def _model(self, item: FurnitureItem) -> tuple[list[Any], Any]:
        """A model split for drawing: its plain-colour parts (trimesh, merged later with the whole scene's) and
        a pyrender mesh of its textured parts (None if it has none)."""
        import trimesh

        plain, textured = [], []
        for part in load_mesh(item, self.asset_dir):
            visual = part.visual
            if isinstance(visual, trimesh.visual.TextureVisuals):
                if visual.uv is not None and getattr(visual.material, "image", None) is not None:
                    textured.append(part)
                    continue
                part = trimesh.Trimesh(
                    part.vertices, part.faces, face_colors=visual.to_color().face_colors, process=False
                )
            plain.append(part)
        mesh = self.pyrender.Mesh.from_trimesh(textured, smooth=False) if textured else None
        return plain, mesh

    def build(self, scene: FurnitureScene) -> Any:
        """The scene graph: room, furniture and lights. Plain-coloured parts of every model are merged into
        one mesh, because pyrender's per-primitive overhead, not rasterisation, dominates on the CPU."""
        import trimesh

        pr = self.pyrender
        X, H, Z = scene.room
        pts = {k: np.array(v, float) for k, v in {
            "000": (0, 0, 0), "X00": (X, 0, 0), "X0Z": (X, 0, Z), "00Z": (0, 0, Z),
            "0H0": (0, H, 0), "XH0": (X, H, 0), "XHZ": (X, H, Z), "0HZ": (0, H, Z)}.items()}  # fmt: skip
        out = pr.Scene(ambient_light=np.full(3, scene.ambient), bg_color=np.zeros(4))
        p = pts
        out.add(self._surface_mesh([[p["00Z"], p["X0Z"], p["X00"], p["000"]]], scene.floor))
        out.add(self._surface_mesh([[p["0H0"], p["XH0"], p["XHZ"], p["0HZ"]]], scene.ceiling))
        walls = [[p["000"], p["X00"], p["XH0"], p["0H0"]], [p["X0Z"], p["00Z"], p["0HZ"], p["XHZ"]],
                 [p["00Z"], p["000"], p["0H0"], p["0HZ"]], [p["X00"], p["X0Z"], p["XHZ"], p["XH0"]]]  # fmt: skip
        out.add(self._surface_mesh(walls, scene.walls))
        merged = []
        for placed in scene.placed:
            key = f"{placed.item.library}:{placed.item.model}"
            if key in self.skipped_models:
                continue
            try:
                plain, textured = self._model(placed.item)
            except AssetError:
                self.skipped_models.add(key)
                continue
            for part in plain:
                part = part.copy().apply_transform(placed.pose)
                if placed.tint is not None:
                    colours = np.array(part.visual.face_colors)
                    colours[:, :3] = np.clip(colours[:, :3] * np.asarray(placed.tint), 0, 255)
                    part.visual.face_colors = colours
                merged.append(part)
            if textured is not None:
                out.add(textured, pose=placed.pose)
        if merged:
            out.add(pr.Mesh.from_trimesh(trimesh.util.concatenate(merged), smooth=False))
        for light in scene.lights:
            colour = np.asarray(light.colour)
            node = {
                "point": lambda c, i: pr.PointLight(color=c, intensity=i),
                "spot": lambda c, i: pr.SpotLight(
                    color=c, intensity=i, innerConeAngle=0.3, outerConeAngle=0.8
                ),
                "directional": lambda c, i: pr.DirectionalLight(color=c, intensity=i),
            }[light.kind](colour, light.intensity)
            out.add(node, pose=light.pose)
        return out

    # -- rendering ------------------------------------------------------------------------------------
    def render_view(self, gl_scene: Any, view: ViewSpec) -> RenderedFrame:
        pr = self.pyrender
        cam = pr.IntrinsicsCamera(view.fx, view.fy, view.cx, view.cy, znear=ZNEAR_M, zfar=ZFAR_M)
        node = gl_scene.add(cam, pose=view.pose)
        flags = pr.RenderFlags.SHADOWS_DIRECTIONAL if self.shadows else 0
        try:
            rgb, depth = self.gl.render(gl_scene, flags=flags)
        finally:
            gl_scene.remove_node(node)
        depth = np.asarray(depth, dtype=np.float32)
        return RenderedFrame(
            bgr=np.ascontiguousarray(rgb[:, :, ::-1]), depth_m=depth,
            intrinsics=(view.fx, view.fy, view.cx, view.cy), scene=f"furniture-{view.kind}",
        )  # fmt: skip

    def render(self, scene: FurnitureScene, views: int) -> list[RenderedFrame]:
        """Up to ``views`` accepted frames of ``scene``, taken from its candidates in order."""
        gl_scene = self.build(scene)
        frames = []
        for view in scene.views:
            if len(frames) == views:
                break
            frame = self.render_view(gl_scene, view)
            if acceptable(frame.depth_m, room_depth(scene.room, view, self.height, self.width)):
                frames.append(frame)
        return frames


def room_depth(room: tuple[float, float, float], view: ViewSpec, height: int, width: int) -> np.ndarray:
    """The z-depth each pixel would have in the empty room (its nearest box face), computed analytically."""
    X, H, Z = room
    u = (np.arange(width) + 0.5 - view.cx) / view.fx
    v = (np.arange(height) + 0.5 - view.cy) / view.fy
    # OpenGL camera: +x right, +y up, looking down -z; rays scaled to unit depth.
    rays = np.stack(np.broadcast_arrays(u[None, :], -v[:, None], -np.ones((height, 1))), axis=-1)
    dirs = rays @ view.pose[:3, :3].T
    eye = view.pose[:3, 3]
    t = np.full((height, width), np.inf)
    for axis, bound in ((0, X), (1, H), (2, Z)):
        d = dirs[..., axis]
        with np.errstate(divide="ignore", invalid="ignore"):
            for plane in (0.0, bound):
                hit = (plane - eye[axis]) / d
                t = np.where((hit > 0) & (hit < t), hit, t)
    return t.astype(np.float32)


def acceptable(depth_m: np.ndarray, empty_room_m: np.ndarray | None = None) -> bool:
    """Reject views with holes, mostly nearer than 0.3 m, with little furniture in them (less than 10% of
    the pixels nearer than the empty room), or where one plane (a wall, a table top seen face-on) fills
    most of the frame. A plane's inverse depth is affine in the pixel coordinates, so a least-squares
    affine fit that explains 85% of the pixels to within 2% means one plane dominates."""
    valid = depth_m > 0
    if valid.mean() < 0.98:
        return False
    if empty_room_m is not None and (depth_m < empty_room_m - 0.03).mean() < 0.10:
        return False
    sub = depth_m[::4, ::4]
    v, u = np.mgrid[: sub.shape[0], : sub.shape[1]]
    ok = sub > 0
    if np.median(sub[ok]) < 0.3 or (sub[ok] < 0.3).mean() > 0.3:
        return False
    inv = 1.0 / sub[ok]
    a = np.stack([u[ok], v[ok], np.ones(ok.sum())], axis=1).astype(np.float64)
    coef, *_ = np.linalg.lstsq(a, inv, rcond=None)
    planar = np.abs(a @ coef - inv) < 0.02 * inv
    return bool(planar.mean() < 0.85)
