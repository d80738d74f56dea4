"""Random scene descriptions for the synthetic renderer: rooms, corridors, table-tops, outdoor ground planes.

Deterministic: one ``numpy.random.Generator`` draws the camera, the analytic primitives with their materials,
the lights and the post-processing, so a seed fixes the whole frame. Indoor scenes are the most common
because the network trained on them must generalise to real indoor photographs (NYU Depth V2, TUM RGB-D).
Units are metres; the world frame is right-handed with +Z up and the floor or ground at z = 0.
"""

from __future__ import annotations

import math

import numpy as np

from .scene_model import (
    Camera,
    Light,
    Material,
    Post,
    Primitive,
    Scene,
    heading,
    look_rotation,
    rot_x,
    rot_z,
)

SCENE_KINDS = ("room", "corridor", "tabletop", "outdoor")
SCENE_PROBS = (0.4, 0.2, 0.25, 0.15)


def random_camera(rng: np.random.Generator, pos: np.ndarray, forward: np.ndarray, h: int, w: int) -> Camera:
    """Pinhole camera with horizontal FOV 45–75°, near-central principal point and a little roll."""
    fx = 0.5 * w / math.tan(math.radians(rng.uniform(45, 75)) / 2)
    fy = fx * rng.uniform(0.98, 1.02)
    cx = (w - 1) / 2 + rng.uniform(-0.03, 0.03) * w
    cy = (h - 1) / 2 + rng.uniform(-0.03, 0.03) * h
    roll = math.radians(float(np.clip(rng.normal(0, 2.5), -6, 6)))
    return Camera(np.asarray(pos, float), look_rotation(forward, roll), fx, fy, cx, cy)


def _color(rng: np.random.Generator, lo: float, hi: float, sat: float) -> tuple[float, float, float]:
    base = rng.uniform(lo, hi)
    return tuple(float(c) for c in np.clip(base * (1 + rng.uniform(-sat, sat, 3)), 0.02, 1.0))


def material(rng: np.random.Generator, role: str) -> Material:
    """A plausible material for a surface role: plain-ish walls and ceilings, textured floors and objects."""
    lo_span, hi_span, lo_mix, hi_mix, lo, hi, sat = {
        "wall": (1.0, 4.0, 0.0, 0.35, 0.35, 0.9, 0.15),
        "ceiling": (1.0, 4.0, 0.0, 0.25, 0.6, 0.95, 0.08),
        "floor": (0.5, 3.0, 0.5, 1.0, 0.25, 0.9, 0.3),
        "furniture": (0.4, 2.0, 0.3, 1.0, 0.2, 0.9, 0.35),
        "object": (0.15, 1.0, 0.2, 1.0, 0.1, 1.0, 0.6),
        "picture": (0.4, 1.2, 1.0, 1.0, 0.9, 1.0, 0.05),
        "ground": (1.0, 6.0, 0.7, 1.0, 0.4, 1.0, 0.3),
        "building": (3.0, 15.0, 0.4, 1.0, 0.3, 0.9, 0.2),
    }[role]
    spec = rng.uniform(0.0, 0.5) if role in ("object", "furniture") and rng.random() < 0.4 else 0.0
    return Material(
        tex=int(rng.integers(0, 2**31 - 1)),
        scale=float(512.0 / rng.uniform(lo_span, hi_span)),
        offset=(float(rng.uniform(0, 4096)), float(rng.uniform(0, 4096))),
        tint=_color(rng, lo, hi, sat),
        mix=float(rng.uniform(lo_mix, hi_mix)),
        spec=float(spec),
    )


def _box(center, half, mat, yaw: float = 0.0) -> Primitive:
    return Primitive("box", np.asarray(center, float), np.asarray(half, float), (mat,), rot_z(yaw))


def thing(rng: np.random.Generator, x: float, y: float, z0: float, smax: float) -> tuple[Primitive, float]:
    """A random object resting on the horizontal surface z = z0 near (x, y); returns it and its xy radius."""
    yaw = rng.uniform(0, 2 * math.pi)
    mats = (material(rng, "object"), material(rng, "object"))
    kind = rng.choice(4, p=[0.45, 0.22, 0.15, 0.18])
    if kind == 0:  # box, axis-aligned or turned about the vertical
        half = rng.uniform(0.05, 0.5, 3) * smax
        yaw = yaw if rng.random() < 0.7 else 0.0
        return _box((x, y, z0 + half[2]), half, mats[0], yaw), float(np.hypot(half[0], half[1]))
    if kind == 1:  # cylinder, standing or lying
        r, hh = rng.uniform(0.04, 0.25) * smax, rng.uniform(0.1, 0.5) * smax
        if rng.random() < 0.2:
            return Primitive(
                "cylinder",
                np.array([x, y, z0 + r]),
                np.array([r, r, hh]),
                mats,
                rot_z(yaw) @ rot_x(math.pi / 2),
            ), float(hh)
        return Primitive(
            "cylinder", np.array([x, y, z0 + hh]), np.array([r, r, hh]), mats, rot_z(yaw)
        ), float(r)
    if kind == 2:
        r = rng.uniform(0.06, 0.35) * smax
        return Primitive("sphere", np.array([x, y, z0 + r]), np.array([r, r, r]), mats, rot_z(yaw)), float(r)
    # slanted plane: a board standing on one edge, tilted 20-75 degrees from horizontal
    hx, hy, tilt = (
        rng.uniform(0.1, 0.5) * smax,
        rng.uniform(0.1, 0.5) * smax,
        math.radians(rng.uniform(20, 75)),
    )
    rot = rot_z(yaw) @ rot_x(tilt)
    return Primitive(
        "quad", np.array([x, y, z0 + hy * math.sin(tilt)]), np.array([hx, hy, 0.0]), mats, rot
    ), float(math.hypot(hx, hy))


class _Layout:
    """Footprints on the floor of a room, used to keep objects, furniture and the camera apart."""

    def __init__(self) -> None:
        self.spots: list[tuple[float, float, float]] = []

    def free(self, x: float, y: float, r: float) -> bool:
        return all(math.hypot(x - a, y - b) > r + c for a, b, c in self.spots)

    def take(self, x: float, y: float, r: float) -> None:
        self.spots.append((x, y, r))


def _scatter_things(
    rng,
    prims: list[Primitive],
    lay: _Layout,
    n: int,
    xs: tuple[float, float],
    ys: tuple[float, float],
    sizes: tuple[float, float],
) -> None:
    """Try ``n`` random floor objects in the box ``xs`` x ``ys``, keeping those that do not collide."""
    for _ in range(n):
        x, y = rng.uniform(*xs), rng.uniform(*ys)
        obj, r = thing(rng, x, y, 0.0, rng.uniform(*sizes))
        if lay.free(x, y, r):
            lay.take(x, y, r)
            prims.append(obj)


def _room_box(rng, X: float, Y: float, Z: float) -> Primitive:
    wall = material(rng, "wall")
    walls = [wall] * 4
    if rng.random() < 0.3:
        walls[int(rng.integers(4))] = material(rng, "wall")
    mats = (*walls, material(rng, "floor"), material(rng, "ceiling"))
    half = np.array([X, Y, Z]) / 2
    return Primitive("room", half.copy(), half, mats, casts_shadow=False)


def _against_wall(rng, X: float, Y: float, side: int, along: float, depth: float, inset: float = 0.0):
    """Centre (x, y) and xy half extents of a footprint backed against wall ``side`` (x-, x+, y-, y+)."""
    if side < 2:
        y = rng.uniform(along / 2, Y - along / 2)
        x = depth / 2 + inset if side == 0 else X - depth / 2 - inset
        return x, y, depth / 2, along / 2
    x = rng.uniform(along / 2, X - along / 2)
    y = depth / 2 + inset if side == 2 else Y - depth / 2 - inset
    return x, y, along / 2, depth / 2


def _furnish(
    rng, prims: list[Primitive], lay: _Layout, X: float, Y: float, n: int, sides=(0, 1, 2, 3)
) -> None:
    """Furniture-like boxes against the walls, sometimes with a small object on top."""
    for _ in range(n):
        along, depth, height = rng.uniform(0.4, 2.0), rng.uniform(0.3, 0.8), rng.uniform(0.4, 2.2)
        x, y, hx, hy = _against_wall(rng, X, Y, int(rng.choice(sides)), along, depth, rng.uniform(0, 0.05))
        if not lay.free(x, y, math.hypot(hx, hy) * 0.8):
            continue
        lay.take(x, y, math.hypot(hx, hy) * 0.8)
        prims.append(_box((x, y, height / 2), (hx, hy, height / 2), material(rng, "furniture")))
        for _ in range(int(rng.integers(0, 4)) if height < 1.3 else 0):  # things on top
            ox, oy = x + rng.uniform(-0.7, 0.7) * hx, y + rng.uniform(-0.7, 0.7) * hy
            prims.append(thing(rng, ox, oy, height, min(hx, hy) * 1.2)[0])


def _wall_panels(rng, prims: list[Primitive], X: float, Y: float, Z: float, sides=(0, 1, 2, 3)) -> None:
    """Pictures (photographs) and doors: thin boxes on the walls."""
    for i in range(int(rng.integers(0, 4))):
        door = i == 0 and rng.random() < 0.5
        along, height = (rng.uniform(0.8, 1.0), rng.uniform(2.0, 2.1)) if door else rng.uniform(0.3, 1.2, 2)
        x, y, hx, hy = _against_wall(rng, X, Y, int(rng.choice(sides)), along, rng.uniform(0.02, 0.06))
        zc = height / 2 if door else rng.uniform(1.2, min(1.9, Z - height / 2 - 0.1))
        prims.append(
            _box((x, y, zc), (hx, hy, height / 2), material(rng, "furniture" if door else "picture"))
        )


def _table(
    rng, prims: list[Primitive], x: float, y: float, hx: float, hy: float, top_z: float, n: int
) -> None:
    """A table (top slab and four legs) with ``n`` random objects on it."""
    th, leg = rng.uniform(0.01, 0.03), rng.uniform(0.02, 0.04)
    wood = material(rng, "furniture")
    prims.append(_box((x, y, top_z - th), (hx, hy, th), wood))
    for sx in (-1, 1):
        for sy in (-1, 1):
            lx, ly, lz = x + sx * (hx - leg - 0.03), y + sy * (hy - leg - 0.03), (top_z - 2 * th) / 2
            prims.append(_box((lx, ly, lz), (leg, leg, lz), wood))
    lay = _Layout()
    for _ in range(n):
        ox, oy = x + rng.uniform(-0.85, 0.85) * hx, y + rng.uniform(-0.85, 0.85) * hy
        obj, r = thing(rng, ox, oy, top_z, rng.uniform(0.15, 0.45))
        if lay.free(ox, oy, r):
            lay.take(ox, oy, r)
            prims.append(obj)


def _place_camera(rng, lay: _Layout, X: float, Y: float, margin: float = 0.4) -> tuple[float, float]:
    for _ in range(50):
        x, y = rng.uniform(margin, X - margin), rng.uniform(margin, Y - margin)
        if lay.free(x, y, 0.3):
            return x, y
    return x, y


def _eye_height(rng) -> float:
    return rng.uniform(1.0, 1.75) if rng.random() < 0.8 else rng.uniform(0.5, 1.0)


def _indoor_lights(rng, X: float, Y: float, Z: float, y_max: float | None = None) -> list[Light]:
    warm = np.array([rng.uniform(0.7, 0.95), rng.uniform(0.85, 1.0), 1.0])  # BGR: warm light is low in blue
    lights = []
    for i in range(int(rng.integers(1, 3))):
        pos = np.array(
            [rng.uniform(0.3, X - 0.3), rng.uniform(0.3, y_max or Y - 0.3), Z - rng.uniform(0.05, 0.5)]
        )
        lights.append(
            Light(pos, warm * (1.0 if i == 0 else rng.uniform(0.3, 0.8)), False, rng.uniform(0.05, 0.5))
        )
    return lights


def _room(rng, h: int, w: int, tabletop: bool) -> Scene:
    X, Y, Z = rng.uniform(3, 8), rng.uniform(3, 8), rng.uniform(2.4, 3.2)
    prims, lay = [_room_box(rng, X, Y, Z)], _Layout()
    if tabletop:  # a desk against the far wall or free-standing, the camera standing at it looking down
        hx, hy, top = rng.uniform(0.4, 1.0), rng.uniform(0.3, 0.6), rng.uniform(0.65, 0.8)
        tx = rng.uniform(hx + 0.2, X - hx - 0.2)
        ty = Y - hy - rng.uniform(0, 0.3) if rng.random() < 0.6 else rng.uniform(hy + 1.5, Y - hy - 0.3)
        _table(rng, prims, tx, ty, hx, hy, top, int(rng.integers(3, 13)))
        cam = np.array(
            [tx + rng.uniform(-0.6, 0.6) * hx, ty - hy - rng.uniform(0.2, 0.7), top + rng.uniform(0.3, 0.8)]
        )
        target = np.array([tx + rng.uniform(-0.6, 0.6) * hx, ty + rng.uniform(-0.6, 0.6) * hy, top])
        lay.take(tx, ty, math.hypot(hx, hy))
        lay.take(cam[0], cam[1], 0.3)
        _furnish(rng, prims, lay, X, Y, int(rng.integers(0, 3)), sides=(0, 1, 3))
    else:
        _furnish(rng, prims, lay, X, Y, int(rng.integers(2, 9)))
        if rng.random() < 0.6:
            hx, hy = rng.uniform(0.4, 0.9), rng.uniform(0.3, 0.6)
            tx, ty = rng.uniform(hx + 0.5, X - hx - 0.5), rng.uniform(hy + 0.5, Y - hy - 0.5)
            if lay.free(tx, ty, math.hypot(hx, hy)):
                lay.take(tx, ty, math.hypot(hx, hy))
                _table(rng, prims, tx, ty, hx, hy, rng.uniform(0.45, 0.8), int(rng.integers(0, 6)))
        n = int(rng.integers(3, 13))
        _scatter_things(rng, prims, lay, n, (0.3, X - 0.3), (0.3, Y - 0.3), (0.2, 1.5))
        x, y = _place_camera(rng, lay, X, Y)
        cam = np.array([x, y, _eye_height(rng)])
        for _ in range(20):  # look at some object (or anywhere) at least 1.2 m away, slightly downwards
            target = np.array([rng.uniform(0, X), rng.uniform(0, Y), 0.0])
            if rng.random() < 0.75:
                target[:2] = prims[int(rng.integers(1, len(prims)))].center[:2]
            if math.hypot(*(target[:2] - cam[:2])) > 1.2:
                break
        d = math.hypot(*(target[:2] - cam[:2]))
        target[2] = cam[2] - d * math.tan(math.radians(rng.uniform(-3, 25)))
    _wall_panels(rng, prims, X, Y, Z)
    camera = random_camera(rng, cam, target - cam, h, w)
    kind = "tabletop" if tabletop else "room"
    return Scene(kind, camera, prims, _indoor_lights(rng, X, Y, Z), _ambient(rng), shadows=rng.random() < 0.7)


def _corridor(rng, h: int, w: int) -> Scene:
    X, Y, Z = rng.uniform(1.6, 3.0), rng.uniform(8, 30), rng.uniform(2.3, 3.0)
    prims, lay = [_room_box(rng, X, Y, Z)], _Layout()
    x0, y0 = rng.uniform(0.35, 0.65) * X, rng.uniform(0.5, 3.0)
    lay.take(x0, y0, 0.5)
    for _ in range(int(rng.integers(2, 9))):  # cabinets, pillars and bins along the walls
        along, depth, height = rng.uniform(0.3, 1.5), rng.uniform(0.15, 0.45), rng.uniform(0.4, Z)
        x, y, hx, hy = _against_wall(rng, X, Y, int(rng.integers(2)), along, depth)
        if lay.free(x, y, min(hx, hy)):
            lay.take(x, y, math.hypot(hx, hy))
            prims.append(_box((x, y, height / 2), (hx, hy, height / 2), material(rng, "furniture")))
    _scatter_things(rng, prims, lay, int(rng.integers(0, 4)), (0.2, X - 0.2), (1.0, Y - 0.3), (0.2, 0.9))
    _wall_panels(rng, prims, X, Y, Z, sides=(0, 1, 3))
    yaw, pitch = math.radians(rng.normal(0, 12)), math.radians(rng.uniform(-3, 15))
    camera = random_camera(rng, np.array([x0, y0, _eye_height(rng)]), heading(yaw, pitch), h, w)
    lights = _indoor_lights(rng, X, Y, Z, y_max=min(Y, y0 + 8.0))
    return Scene("corridor", camera, prims, lights, _ambient(rng), shadows=rng.random() < 0.7)


def _outdoor(rng, h: int, w: int) -> Scene:
    ground = Primitive("plane", np.zeros(3), np.zeros(3), (material(rng, "ground"),), casts_shadow=False)
    prims = [ground]
    yaw = rng.uniform(0, 2 * math.pi)
    eye = _eye_height(rng)
    for _ in range(int(rng.integers(3, 13))):  # props, poles and a few distant buildings ahead of the camera
        a, d = yaw + math.radians(rng.uniform(-50, 50)), math.exp(rng.uniform(math.log(1.5), math.log(30)))
        x, y = d * math.sin(a), d * math.cos(a)
        if rng.random() < 0.2:  # a pole or tree trunk
            r, hh = rng.uniform(0.05, 0.25), rng.uniform(1.0, 3.0)
            obj = Primitive(
                "cylinder", np.array([x, y, hh]), np.array([r, r, hh]), (material(rng, "object"),) * 2
            )
        else:
            obj = thing(rng, x, y, 0.0, rng.uniform(0.3, 1.5))[0]
        if math.hypot(x, y) > obj.radius + 0.5:
            prims.append(obj)
    for _ in range(int(rng.integers(0, 5))):
        a, d = yaw + math.radians(rng.uniform(-60, 60)), rng.uniform(15, 60)
        half = np.array([rng.uniform(2, 8), rng.uniform(2, 8), rng.uniform(1.5, 10)])
        prims.append(
            _box(
                (d * math.sin(a), d * math.cos(a), half[2]),
                half,
                material(rng, "building"),
                rng.uniform(0, 7),
            )
        )
    sun = heading(rng.uniform(0, 2 * math.pi), -math.radians(rng.uniform(20, 70)))
    light = Light(
        sun, np.array([rng.uniform(0.75, 0.95), rng.uniform(0.9, 1.0), 1.0]) * rng.uniform(1.0, 1.6), True
    )
    horizon = np.array(_color(rng, 0.6, 0.9, 0.1))
    zenith = np.array([rng.uniform(0.5, 0.9), rng.uniform(0.3, 0.6), rng.uniform(0.1, 0.4)])  # BGR: bluish
    camera = random_camera(
        rng, np.array([0.0, 0.0, eye]), heading(yaw, math.radians(rng.uniform(-2, 15))), h, w
    )
    return Scene(
        "outdoor",
        camera,
        prims,
        [light],
        _ambient(rng) * np.array([1.2, 1.05, 0.95]),
        sky=(horizon * 1.2, zenith),
        fog_m=rng.uniform(60, 300),
        shadows=rng.random() < 0.8,
    )


def _ambient(rng) -> np.ndarray:
    return np.full(3, rng.uniform(0.05, 0.25))


def sample_scene(rng: np.random.Generator, height: int, width: int) -> Scene:
    """Draw a random scene (kind chosen by SCENE_PROBS) and its post-processing from ``rng``."""
    kind = SCENE_KINDS[int(rng.choice(len(SCENE_KINDS), p=SCENE_PROBS))]
    if kind == "corridor":
        scene = _corridor(rng, height, width)
    elif kind == "outdoor":
        scene = _outdoor(rng, height, width)
    else:
        scene = _room(rng, height, width, tabletop=kind == "tabletop")
    scene.post = Post(
        exposure=float(rng.uniform(0.6, 1.0)),
        white_balance=tuple(float(c) for c in rng.uniform(0.85, 1.15, 3)),
        vignette=float(rng.uniform(0, 0.4)),
        blur=float(rng.uniform(0.3, 1.1)) if rng.random() < 0.5 else 0.0,
        noise=float(rng.uniform(0.0, 0.025)),
        jpeg=int(rng.integers(40, 95)) if rng.random() < 0.3 else 0,
        seed=int(rng.integers(0, 2**31 - 1)),
    )
    return scene
