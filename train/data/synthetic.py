"""Procedural synthetic RGB-D frames with exact per-pixel depth, ray cast on the CPU with numpy and OpenCV.

Why: unlimited, perfectly labelled training data generated on the fly. Scenes (``scenes.py``) are rooms, corridors,
table-tops and outdoor ground planes filled with boxes, spheres, cylinders and slanted planes, textured with real
photographs and lit by Lambertian point/directional lights with cheap shadow-mapped cast shadows.

Depth is the z-distance along the optical axis (not the ray length), in metres, float32, defined at every pixel
centre: each ray is scaled so its camera-frame z component is 1, so the ray parameter of the nearest analytic hit
*is* the depth. Sky pixels, and ground farther than ``SKY_DEPTH_M``, get the finite stand-in ``SKY_DEPTH_M``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .scene_model import SKY_DEPTH_M, Camera, Light, Material, Primitive, Scene, look_rotation
from .scenes import sample_scene
from .textures import DEFAULT_TEXTURE_DIR, MipAtlas, albedo, load_textures

try:  # only SyntheticRGBD needs torch; the renderer itself does not
    from torch.utils.data import Dataset as _Dataset
except ImportError:  # pragma: no cover
    _Dataset = object  # type: ignore[assignment,misc]

_SHADOW_RES = 160
_NEAR = 1e-4
_F32 = np.float32
_NOISE: list[np.ndarray] = []
_CORNERS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)


@dataclass(frozen=True)
class RenderedFrame:
    """One labelled frame: the image, its exact z-depth, the pinhole intrinsics and the scene kind."""

    bgr: np.ndarray  # HxWx3 uint8
    depth_m: np.ndarray  # HxW float32, > 0 everywhere
    intrinsics: tuple[float, float, float, float]  # fx, fy, cx, cy
    scene: str  # "room" | "corridor" | "tabletop" | "outdoor"


# ----------------------------------------------------------------------------------------- ray casting


def _rays(cam: Camera, h: int, w: int) -> np.ndarray:
    """World-space ray directions (3, h, w) through pixel centres, scaled to unit camera-z component."""
    xs = (np.arange(w, dtype=_F32) - _F32(cam.cx)) / _F32(cam.fx)
    ys = (np.arange(h, dtype=_F32) - _F32(cam.cy)) / _F32(cam.fy)
    r = cam.rot.astype(_F32)
    return r[:, 0, None, None] * xs + r[:, 1, None, None] * ys[:, None] + r[:, 2, None, None]


def _screen_rects(
    prims: list[Primitive], cam: Camera, h: int, w: int
) -> list[tuple[int, int, int, int] | None]:
    """Conservative pixel rectangles (v0, v1, u0, u1) of every primitive (None: unseen) from the projected corners
    of their oriented bounding boxes, all at once; unbounded ones and boxes reaching behind the camera get the
    whole frame."""
    full = (0, h, 0, w)
    finite = [i for i, p in enumerate(prims) if math.isfinite(p.radius)]
    rects: list[tuple[int, int, int, int] | None] = [full] * len(prims)
    if not finite:
        return rects
    half = np.array(
        [p.size if p.kind != "cylinder" else p.size[[0, 0, 2]] for p in (prims[i] for i in finite)]
    )
    rots = np.array([prims[i].rot for i in finite])
    corners = np.array([prims[i].center for i in finite])[:, None] + (
        _CORNERS * half[:, None]
    ) @ rots.transpose(0, 2, 1)
    c = (corners - cam.pos) @ cam.rot  # (n, 8, 3) in the camera frame
    z = c[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u, v = c[..., 0] / z * cam.fx + cam.cx, c[..., 1] / z * cam.fy + cam.cy
    for j, i in enumerate(finite):
        if (z[j] <= _NEAR).all():
            rects[i] = None
        elif (z[j] > 1e-3).all():
            u0, u1 = max(math.floor(u[j].min()), 0), min(math.ceil(u[j].max()) + 1, w)
            v0, v1 = max(math.floor(v[j].min()), 0), min(math.ceil(v[j].max()) + 1, h)
            rects[i] = (v0, v1, u0, u1) if u0 < u1 and v0 < v1 else None
    return rects


def _rotate(rt: np.ndarray, d: np.ndarray) -> list[np.ndarray]:
    """rt @ d for d (3, ...), as three arrays, skipping zero and unit entries (most objects only turn about z)."""
    out = []
    for row in rt:
        acc = None
        for c, dj in zip(row, d, strict=True):
            if c != 0:
                term = dj if c == 1 else dj * _F32(c)
                acc = term if acc is None else acc + term
        out.append(acc if acc is not None else np.zeros_like(d[0]))
    return out


def _hit(p: Primitive, origin: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Ray parameter of the nearest hit in front of the origin for rays ``d`` (3, a, b); inf where missed."""
    if p.kind == "sphere":  # rotation-invariant: stay in world axes
        o = [float(c) for c in origin - p.center]
    else:
        o, d = [float(c) for c in p.rot.T @ (origin - p.center)], _rotate(p.rot.T, d)
    s, inf = [float(c) for c in p.size], _F32(np.inf)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if p.kind in ("box", "room"):  # slab test in object space
            slabs = []
            for i in range(3):
                inv = _F32(1) / d[i]
                t1, t2 = inv * _F32(-s[i] - o[i]), inv * _F32(s[i] - o[i])
                slabs.append((np.minimum(t1, t2), np.maximum(t1, t2)))
            tmax = np.minimum(np.minimum(slabs[0][1], slabs[1][1]), slabs[2][1])
            if p.kind == "room":  # seen from inside: the exit point
                return tmax
            tmin = np.maximum(np.maximum(slabs[0][0], slabs[1][0]), slabs[2][0])
            return np.where((tmin <= tmax) & (tmin > _NEAR), tmin, inf)
        if p.kind == "sphere":  # the rotation does not matter; d is not unit length
            b = d[0] * _F32(o[0]) + d[1] * _F32(o[1]) + d[2] * _F32(o[2])
            a = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
            t = (-b - np.sqrt(b * b - a * _F32(o[0] ** 2 + o[1] ** 2 + o[2] ** 2 - s[0] ** 2))) / a
            return np.where(t > _NEAR, t, inf)  # NaN (no root) compares False
        if p.kind == "cylinder":  # side (axis local z), then the one cap that faces the origin
            a = d[0] * d[0] + d[1] * d[1]
            b = d[0] * _F32(o[0]) + d[1] * _F32(o[1])
            t = (-b - np.sqrt(b * b - a * _F32(o[0] ** 2 + o[1] ** 2 - s[0] ** 2))) / a
            t = np.where((t > _NEAR) & (np.abs(t * d[2] + _F32(o[2])) <= s[2]), t, inf)
            if abs(o[2]) > s[2]:
                tc = _F32(math.copysign(s[2], o[2]) - o[2]) / d[2]
                xc, yc = tc * d[0] + _F32(o[0]), tc * d[1] + _F32(o[1])
                t = np.where((tc > _NEAR) & (xc * xc + yc * yc <= s[0] ** 2), np.minimum(t, tc), t)
            return t
        t = _F32(-o[2]) / d[2]  # quad or plane: local z = 0
        ok = t > _NEAR
        if p.kind == "quad":
            ok &= (np.abs(t * d[0] + _F32(o[0])) <= s[0]) & (np.abs(t * d[1] + _F32(o[1])) <= s[1])
        return np.where(ok, t, inf)


def _cast(cam: Camera, h: int, w: int, prims: list[Primitive], far: float) -> tuple[np.ndarray, ...]:
    """Nearest-hit z-depth (h, w), primitive index (h, w; -1 = nothing nearer than ``far``) and the rays."""
    dirs = _rays(cam, h, w)
    depth = np.full((h, w), far, _F32)
    ids = np.full((h, w), -1, np.int16)
    for k, (p, rect) in enumerate(zip(prims, _screen_rects(prims, cam, h, w), strict=True)):
        if rect is None:
            continue
        v0, v1, u0, u1 = rect
        t = _hit(p, cam.pos, dirs[:, v0:v1, u0:u1])
        dv = depth[v0:v1, u0:u1]
        closer = t < dv
        np.copyto(dv, t, where=closer)
        np.copyto(ids[v0:v1, u0:u1], k, where=closer)
    return depth, ids, dirs


# -------------------------------------------------------------------------------------------- shading


def _surface(p: Primitive, pts: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, ...]:
    """World normals (3, n) facing the rays, planar (u, v) in metres and face index at hit points (3, n)."""
    q = _rotate(p.rot.T, pts - p.center.astype(_F32)[:, None])
    s = [float(c) for c in p.size]
    zero, face = np.zeros_like(q[0]), np.zeros(q[0].shape, np.int8)
    if p.kind in ("box", "room"):  # the face is the axis where the point is relatively farthest out
        a0, a1, a2 = (np.abs(q[i]) * _F32(1 / s[i]) for i in range(3))
        ax0 = (a0 >= a1) & (a0 >= a2)
        ax2 = ~ax0 & (a2 >= a1)
        ax1 = ~ax0 & ~ax2
        n = [ax0 * np.sign(q[0]), ax1 * np.sign(q[1]), ax2 * np.sign(q[2])]
        face = 2 * ax1.view(np.int8) + 4 * ax2.view(np.int8) + ((n[0] + n[1] + n[2]) > 0).view(np.int8)
        u, v = np.where(ax0, q[1], q[0]), np.where(ax2, q[1], -q[2])
    elif p.kind == "sphere":
        n = [c * _F32(1 / s[0]) for c in q]
        u, v = np.arctan2(q[1], q[0]) * _F32(s[0]), -q[2]
    elif p.kind == "cylinder":
        cap = np.abs(q[2]) * _F32(s[0] / s[2]) > np.sqrt(q[0] * q[0] + q[1] * q[1])
        side = ~cap * _F32(1 / s[0])
        n = [q[0] * side, q[1] * side, cap * np.sign(q[2])]
        u = np.where(cap, q[0], np.arctan2(q[1], q[0]) * _F32(s[0]))
        v, face = np.where(cap, q[1], -q[2]), cap.view(np.int8)
    else:
        n, u, v = [zero, zero, zero + 1], q[0], q[1]
    n = np.stack(_rotate(p.rot, n))
    n *= np.where(n[0] * d[0] + n[1] * d[1] + n[2] * d[2] > 0, _F32(-1), _F32(1))  # face the camera
    return n, u, v, face


def _shadow(scene: Scene, light: Light, pts: np.ndarray, cos: np.ndarray, h: int, w: int) -> np.ndarray:
    """Fraction of ``light`` reaching each pixel's point (3, h*w): one shadow-map tap with a slope-scaled bias
    (``cos``: cosine between normal and light), softened by a 3x3 blur."""
    casters = [p for p in scene.prims if p.casts_shadow]
    if not casters:
        return np.ones(pts.shape[1], _F32)
    if light.directional:  # a distant perspective light standing in for an orthographic one
        centre = scene.camera.pos + scene.camera.rot[:, 2] * 8.0
        dist, half = 300.0, math.atan(16.0 / 300.0)
        pos, fwd = centre + light.vec * dist, -light.vec
    else:
        pos, fwd, half = light.vec, np.array([0.0, 0.0, -1.0]), math.radians(62)
    f = 0.5 * _SHADOW_RES / math.tan(half)
    c = (_SHADOW_RES - 1) / 2
    lcam = Camera(pos, look_rotation(fwd), f, f, c, c)
    smap = _cast(lcam, _SHADOW_RES, _SHADOW_RES, casters, 1e30)[0]
    q0, q1, z = _rotate(lcam.rot.T, pts - pos.astype(_F32)[:, None])
    inv = _F32(f) / np.maximum(z, _F32(1e-6))
    u, v = (q0 * inv + _F32(c)).reshape(h, w), (q1 * inv + _F32(c)).reshape(h, w)
    occ = cv2.remap(smap, u, v, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=1e30)
    cos = np.maximum(cos, _F32(0.05))
    slope = np.minimum(np.sqrt(np.maximum(1 - cos * cos, 0)) / cos, _F32(5))
    bias = _F32(0.005) + z * _F32(1.5 / f) * (slope + _F32(0.5))
    lit = ((z - bias <= occ.ravel()) | (z <= 0)).view(np.uint8)
    return cv2.blur(lit.reshape(h, w) * _F32(1), (3, 3)).ravel()


def _shade(scene: Scene, pts, nrm, dirs, alb, spec, depth, h: int, w: int) -> np.ndarray:
    """Linear BGR radiance (3, n): hemispheric ambient + Lambert (+ Blinn-Phong) per light, then fog."""
    hemi = _F32(0.75) + _F32(0.25) * nrm[2]
    irr = [hemi * _F32(a) for a in scene.ambient]
    shiny = np.flatnonzero(spec)
    glint = np.zeros((3, shiny.size), _F32)
    for i, light in enumerate(scene.lights):
        lv = light.vec.astype(_F32)
        if light.directional:
            cos, att = nrm[0] * lv[0] + nrm[1] * lv[1] + nrm[2] * lv[2], _F32(1)
        else:
            lx, ly, lz = lv[0] - pts[0], lv[1] - pts[1], lv[2] - pts[2]
            d2 = lx * lx + ly * ly + lz * lz
            cos = (nrm[0] * lx + nrm[1] * ly + nrm[2] * lz) / np.sqrt(d2)
            att = _F32(1) / (_F32(1) + _F32(light.falloff) * d2)
        amount = np.maximum(cos, 0) * att
        if scene.shadows and i == 0:  # the main light casts shadows; fill lights do not
            amount *= _shadow(scene, light, pts, cos, h, w)
        for c in range(3):
            irr[c] += amount * _F32(light.color[c])
        if shiny.size:
            ldir = lv[:, None] if light.directional else lv[:, None] - np.take(pts, shiny, axis=1)
            view = -np.take(dirs, shiny, axis=1)
            half = ldir / np.sqrt((ldir * ldir).sum(0)) + view / np.sqrt((view * view).sum(0))
            c = np.maximum((np.take(nrm, shiny, axis=1) * half).sum(0) / np.sqrt((half * half).sum(0)), 0)
            c8 = ((c * c) ** 2) ** 2
            glint += (
                c8 * (c8 * c8) * np.take(amount * spec, shiny) * light.color.astype(_F32)[:, None]
            )  # cos^24
    rad = alb * np.stack(irr)
    for c in range(3):
        rad[c][shiny] += glint[c]
    if scene.fog_m > 0 and scene.sky is not None:
        far = depth * _F32(1 / SKY_DEPTH_M)
        fog = np.maximum(1 - np.exp(depth * _F32(-1 / scene.fog_m)), (far * far) ** 2)
        for c in range(3):
            rad[c] += (_F32(scene.sky[0][c]) - rad[c]) * fog
    return rad


def _post(img: np.ndarray, scene: Scene) -> np.ndarray:
    """Auto-exposure, white balance, vignette, gamma, blur, noise, JPEG: planar linear (3, h, w) -> BGR uint8."""
    post, (h, w) = scene.post, img.shape[1:]
    if post is None:
        return cv2.merge(list((np.sqrt(np.clip(img, 0, 1)) * 255 + 0.5).astype(np.uint8)))
    rng = np.random.default_rng(post.seed)
    sample = img[:, ::4, ::4].mean(axis=0).ravel()
    ref = float(np.partition(sample, int(0.97 * (sample.size - 1)))[int(0.97 * (sample.size - 1))])
    gain = np.asarray(post.white_balance, _F32) * _F32(post.exposure**2 / max(ref, 1e-4))
    if post.vignette > 0:
        yy, xx = np.ogrid[-1 : 1 : h * 1j, -1 : 1 : w * 1j]
        img *= (1 - post.vignette / 2 * (xx * xx + yy * yy)).astype(_F32)
    img = cv2.merge([img[c] * gain[c] for c in range(3)])
    img = np.sqrt(np.clip(img, 0, 1, out=img), out=img)
    if post.blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), post.blur)
    if post.noise > 0:
        if not _NOISE:
            _NOISE.append(np.random.default_rng(7).standard_normal((512, 512, 3), dtype=_F32))
        reps = (
            -(-h // 512),
            -(-w // 512),
            1,
        )  # a random crop of a fixed noise tile: cheaper than fresh noise
        tile = np.tile(_NOISE[0], reps) if reps != (1, 1, 1) else _NOISE[0]
        oy, ox = int(rng.integers(0, tile.shape[0] - h + 1)), int(rng.integers(0, tile.shape[1] - w + 1))
        step = 1 - 2 * int(rng.integers(2))
        img += tile[oy : oy + h, ox : ox + w][::step, ::-step] * _F32(post.noise)
    out = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    if post.jpeg:
        jpeg = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, post.jpeg])[1]
        out = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    return out


def _render(scene: Scene, h: int, w: int, bank: list[MipAtlas]) -> RenderedFrame:
    cam = scene.camera
    depth, ids, dirs = _cast(cam, h, w, scene.prims, SKY_DEPTH_M)
    d, z = dirs.reshape(3, -1), depth.ravel()
    pts = cam.pos.astype(_F32)[:, None] + d * z
    order = np.argsort(ids.ravel(), kind="stable")  # pixels grouped by primitive, sky (-1) first
    bounds = np.cumsum(np.bincount(ids.ravel() + 1, minlength=len(scene.prims) + 1))
    nrm, alb, spec = np.zeros((3, h * w), _F32), np.zeros((3, h * w), _F32), np.zeros(h * w, _F32)
    for k, p in enumerate(scene.prims):
        idx = order[bounds[k] : bounds[k + 1]]
        if not idx.size:
            continue
        zk = np.take(z, idx)
        nk, u, v, face = _surface(p, np.take(pts, idx, axis=1), np.take(d, idx, axis=1))
        _scatter(nrm, idx, nk)
        mats = list(dict.fromkeys(p.materials))  # distinct materials: walls usually share one
        mid = np.array([mats.index(m) for m in p.materials], np.int8)[face % len(p.materials)]
        for m, mat in enumerate(mats):
            sel = np.flatnonzero(mid == m) if len(mats) > 1 else slice(None)
            at = idx[sel]
            if at.size:
                _scatter(alb, at, albedo(mat, bank, u[sel], v[sel], zk[sel], cam.fx))
                if mat.spec:
                    spec[at] = mat.spec
    img = _shade(scene, pts, nrm, d, alb, spec, z, h, w)
    sky = order[: bounds[0]]
    if sky.size:  # gradient from horizon to zenith by ray elevation
        horizon, zenith = scene.sky if scene.sky is not None else (np.full(3, 0.5), np.full(3, 0.5))
        ds = np.take(d, sky, axis=1)
        k = np.clip(ds[2] / np.sqrt((ds * ds).sum(0)), 0, 1) ** _F32(0.6)
        _scatter(img, sky, (horizon[:, None] * (1 - k) + zenith[:, None] * k).astype(_F32))
    bgr = _post(img.reshape(3, h, w), scene)
    return RenderedFrame(bgr, depth, (float(cam.fx), float(cam.fy), float(cam.cx), float(cam.cy)), scene.kind)


def _scatter(dst: np.ndarray, idx: np.ndarray, src: np.ndarray) -> None:
    """dst[:, idx] = src for planar (3, n) arrays, one channel at a time (several times faster in numpy)."""
    for c in range(3):
        dst[c][idx] = src[c]


def render_scene(
    scene: Scene, height: int, width: int, texture_dir: str | Path | None = None
) -> RenderedFrame:
    """Render an explicit scene description (the single code path behind render_frame and the plane test)."""
    return _render(scene, height, width, load_textures(texture_dir))


def render_frame(
    seed: int, height: int = 256, width: int = 256, texture_dir: str | Path | None = DEFAULT_TEXTURE_DIR
) -> RenderedFrame:
    """Render the random scene fixed by ``seed`` (same seed, same arrays); texture_dir=None: procedural textures."""
    bank = load_textures(texture_dir)
    return _render(sample_scene(np.random.default_rng(seed), height, width), height, width, bank)


def render_plane_depth(
    distance_m: float, height: int, width: int, fx: float, fy: float, cx: float, cy: float, pitch: float = 0.0
) -> np.ndarray:
    """Depth of an infinite plane through the point ``distance_m`` ahead on the optical axis, its normal tilted by
    ``pitch`` radians about the camera x axis: analytically z = distance / (1 + tan(pitch) * (v - cy) / fy)."""
    fwd = np.array([0.0, 1.0, 0.0])
    cam = Camera(np.zeros(3), look_rotation(fwd), fx, fy, cx, cy)
    normal = cam.rot @ np.array([0.0, math.sin(pitch), math.cos(pitch)])  # camera frame -> world
    rot = look_rotation(normal)  # a right-handed frame whose local z is the normal
    plane = Primitive("plane", fwd * distance_m, np.zeros(3), (Material(),), rot, casts_shadow=False)
    scene = Scene("plane", cam, [plane], [Light(np.array([0.0, -1.0, 1.0]), np.ones(3))], np.full(3, 0.3))
    return render_scene(scene, height, width, None).depth_m


class SyntheticRGBD(_Dataset):
    """Map-style dataset of rendered frames; item i is render_frame(seed * 1_000_003 + i), so it is reproducible."""

    def __init__(
        self,
        length: int,
        size: tuple[int, int] = (256, 256),
        seed: int = 0,
        texture_dir: str | Path | None = DEFAULT_TEXTURE_DIR,
    ) -> None:
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        self.length, self.seed, self.texture_dir = int(length), seed, texture_dir
        self.size = (int(size[0]), int(size[1]))  # (height, width)
        load_textures(texture_dir)  # fail early (and fill the cache that forked workers inherit)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        """{"bgr": HxWx3 uint8, "depth_m": HxW float32 z-depth in metres, "source": "synthetic"}; size = (H, W)."""
        if not -self.length <= i < self.length:
            raise IndexError(f"index {i} out of range for SyntheticRGBD of length {self.length}")
        i %= self.length
        frame = render_frame(self.seed * 1_000_003 + i, self.size[0], self.size[1], self.texture_dir)
        return {"bgr": frame.bgr, "depth_m": frame.depth_m, "source": "synthetic"}
