"""Furnished rooms for the asset renderer: layout, lights and robot viewpoints, drawn from one seed.

Scenes have structure, not uniform scatter: furniture stands with its back to the walls, chairs face a table,
people stand in the free floor space, clutter sits on top surfaces at real scale, and cameras are where robots
put them: a mobile robot (0.3-1.8 m high, level or slightly pitched) or a tabletop arm (0.4-1.5 m from a
surface, looking down 20-70 degrees). Pure numpy: nothing here touches OpenGL, so layouts are testable alone.

World frame: metres, +y up, the floor at y = 0, the room spans [0, X] x [0, Z]. Poses are 4x4 matrices. A
model's front faces its local +z (Sweet Home 3D's convention); cameras follow OpenGL (looking down local -z).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .assets import FurnitureItem, by_role

VIEW_KINDS = ("robot", "arm")


@dataclass(frozen=True)
class Placed:
    item: FurnitureItem
    pose: np.ndarray  # 4x4, model frame -> world
    tint: tuple[float, float, float] | None = None  # multiplies the model's plain colours (material variety)


@dataclass(frozen=True)
class LightSpec:
    kind: str  # "point" | "spot" | "directional"
    pose: np.ndarray  # 4x4; lights shine down their local -z
    colour: tuple[float, float, float]
    intensity: float


@dataclass(frozen=True)
class Surface:
    """How a room surface looks: a texture (index into the bank, tile size in metres) or a plain colour."""

    colour: tuple[float, float, float]
    texture: int | None = None
    tile_m: float = 1.0


@dataclass(frozen=True)
class ViewSpec:
    pose: np.ndarray  # 4x4 camera -> world (OpenGL camera)
    fx: float
    fy: float
    cx: float
    cy: float
    kind: str


@dataclass(frozen=True)
class FurnitureScene:
    room: tuple[float, float, float]  # X (width), H (height), Z (depth)
    walls: Surface
    floor: Surface
    ceiling: Surface
    placed: list[Placed]
    lights: list[LightSpec]
    ambient: float
    views: list[ViewSpec] = field(default_factory=list)  # candidates, best first; the renderer filters them


def yaw_pose(x: float, y: float, z: float, yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    pose = np.eye(4)
    pose[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    pose[:3, 3] = (x, y, z)
    return pose


def look_at(eye: np.ndarray, target: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """OpenGL camera pose at ``eye`` looking at ``target`` with world +y up (and a roll about the axis)."""
    back = eye - target
    back = back / np.linalg.norm(back)
    right = np.cross([0.0, 1.0, 0.0], back)
    if np.linalg.norm(right) < 1e-6:
        right = np.array([1.0, 0.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    c, s = math.cos(roll), math.sin(roll)
    right, up = c * right + s * up, -s * right + c * up
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, up, back, eye
    return pose


class _Floor:
    """Axis-aligned footprints already taken on the floor (x0, z0, x1, z1), with how high each piece reaches."""

    def __init__(self, X: float, Z: float) -> None:
        self.X, self.Z = X, Z
        self.boxes: list[tuple[float, float, float, float]] = []
        self.tops: list[float] = []

    def take(self, box: tuple[float, float, float, float], top: float) -> None:
        self.boxes.append(box)
        self.tops.append(top)

    def fits(self, box: tuple[float, float, float, float], gap: float = 0.05) -> bool:
        x0, z0, x1, z1 = box
        if x0 < 0 or z0 < 0 or x1 > self.X or z1 > self.Z:
            return False
        return not self.overlaps(box, self.boxes, gap)

    @staticmethod
    def overlaps(box: tuple[float, float, float, float], others: list, gap: float = 0.0) -> bool:
        x0, z0, x1, z1 = box
        return not all(
            x1 + gap <= a or a1 + gap <= x0 or z1 + gap <= b or b1 + gap <= z0 for a, b, a1, b1 in others
        )

    def free_point(
        self, rng: np.random.Generator, margin: float, tries: int = 40
    ) -> tuple[float, float] | None:
        for _ in range(tries):
            x, z = rng.uniform(margin, self.X - margin), rng.uniform(margin, self.Z - margin)
            if self.fits((x - margin, z - margin, x + margin, z + margin), gap=0.0):
                return x, z
        return None


def footprint(item: FurnitureItem, x: float, z: float, yaw: float) -> tuple[float, float, float, float]:
    w, _, d = item.size_m
    c, s = abs(math.cos(yaw)), abs(math.sin(yaw))
    hx, hz = (w * c + d * s) / 2, (w * s + d * c) / 2
    return x - hx, z - hz, x + hx, z + hz


def _colour(rng: np.random.Generator, lo: float, hi: float, sat: float) -> tuple[float, float, float]:
    base = rng.uniform(lo, hi)
    return tuple(float(c) for c in np.clip(base * (1 + rng.uniform(-sat, sat, 3)), 0.03, 1.0))  # type: ignore[return-value]


def _surface(rng: np.random.Generator, n_textures: int, p_texture: float, lo: float, hi: float) -> Surface:
    colour = _colour(rng, lo, hi, 0.15)
    if n_textures and rng.random() < p_texture:
        return Surface(colour, int(rng.integers(n_textures)), float(rng.uniform(0.4, 2.5)))
    return Surface(colour)


def _wall_spot(rng, item: FurnitureItem, X: float, Z: float, gap: float) -> tuple[float, float, float]:
    """(x, z, yaw) with the piece's back ``gap`` from a random wall (yaw turns its back to the wall)."""
    w, _, d = item.size_m
    side = int(rng.integers(4))
    yaw = (0.0, math.pi, math.pi / 2, -math.pi / 2)[side]
    along = rng.uniform(w / 2 + 0.02, max(w / 2 + 0.02, (X if side < 2 else Z) - w / 2 - 0.02))
    x, z = [(along, d / 2 + gap), (along, Z - d / 2 - gap), (d / 2 + gap, along), (X - d / 2 - gap, along)][
        side
    ]
    return x, z, yaw


def _tint(rng: np.random.Generator) -> tuple[float, float, float] | None:
    """A third of the models get their plain colours multiplied by a random tint."""
    return tuple(float(v) for v in rng.uniform(0.5, 1.3, 3)) if rng.random() < 0.33 else None  # type: ignore[return-value]


def _against_walls(rng, items: list[FurnitureItem], floor: _Floor, out: list[Placed], count: int) -> None:
    """Stand ``count`` pieces with their backs to random walls."""
    for _ in range(count * 4):
        if count <= 0 or not items:
            return
        item = items[int(rng.integers(len(items)))]
        w, h, d = item.size_m
        if d > 1.3 or w > min(floor.X, floor.Z) * 0.8:
            continue
        x, z, yaw = _wall_spot(rng, item, floor.X, floor.Z, rng.uniform(0.0, 0.08))
        box = footprint(item, x, z, yaw)
        if floor.fits(box):
            floor.take(box, h)
            out.append(Placed(item, yaw_pose(x, 0.0, z, yaw), _tint(rng)))
            count -= 1


def _on_walls(
    rng, items: list[FurnitureItem], floor: _Floor, H: float, out: list[Placed], count: int
) -> None:
    """Hang ``count`` wall-mounted pieces (shelves, cabinets, pictures) at their catalogue elevation, above
    whatever stands below them and clear of each other."""
    hung: list[tuple[float, float, float, float]] = []
    for _ in range(count * 6):
        if count <= 0 or not items:
            return
        item = items[int(rng.integers(len(items)))]
        w, h, d = item.size_m
        y = item.elevation_m
        if y + h > H - 0.02 or d > 0.8 or w > min(floor.X, floor.Z) * 0.8:
            continue
        x, z, yaw = _wall_spot(rng, item, floor.X, floor.Z, 0.0)
        box = footprint(item, x, z, yaw)
        below = [b for b, top in zip(floor.boxes, floor.tops, strict=True) if top > y - 0.02]
        if _Floor.overlaps(box, below + hung):
            continue
        hung.append(box)
        out.append(Placed(item, yaw_pose(x, y, z, yaw), _tint(rng)))
        count -= 1


def _table_group(rng, roles: dict[str, list[FurnitureItem]], floor: _Floor, out: list[Placed]) -> None:
    """A table in the open floor with 2-4 chairs turned towards it."""
    tables, chairs = roles.get("table", []), roles.get("chair", [])
    if not tables:
        return
    table = tables[int(rng.integers(len(tables)))]
    w, _, d = table.size_m
    if w + 1.3 > floor.X or d + 1.3 > floor.Z:
        return
    for _ in range(20):
        x, z = (
            rng.uniform(w / 2 + 0.6, floor.X - w / 2 - 0.6),
            rng.uniform(d / 2 + 0.6, floor.Z - d / 2 - 0.6),
        )
        yaw = float(rng.choice([0.0, math.pi / 2])) + rng.normal(0, 0.05)
        box = footprint(table, x, z, yaw)
        if floor.fits(box, gap=0.4):
            break
    else:
        return
    floor.take(box, table.size_m[1])
    out.append(Placed(table, yaw_pose(x, 0.0, z, yaw), _tint(rng)))
    if not chairs:
        return
    chair = chairs[int(rng.integers(len(chairs)))]
    sides = rng.permutation(4)[: int(rng.integers(2, 5))]
    for side in sides:
        # Side k of the table: its outward normal in table coordinates, and the half-extent along it.
        normal = [(0, 1), (0, -1), (1, 0), (-1, 0)][side]
        half = d / 2 if side < 2 else w / 2
        reach = half + chair.size_m[2] * rng.uniform(0.15, 0.5)
        lx, lz = normal[0] * reach, normal[1] * reach
        c, s = math.cos(yaw), math.sin(yaw)
        cx, cz = x + c * lx + s * lz, z - s * lx + c * lz
        # The chair's front (+z) faces the table centre, with some slack.
        chair_yaw = math.atan2(x - cx, z - cz) + rng.normal(0, 0.2)
        cbox = footprint(chair, cx, cz, chair_yaw)
        if floor.fits(cbox, gap=0.0):
            floor.take(cbox, chair.size_m[1])
            out.append(Placed(chair, yaw_pose(cx, 0.0, cz, chair_yaw)))


def _standing(rng, items: list[FurnitureItem], floor: _Floor, out: list[Placed], count: int) -> None:
    """People and free-standing pieces anywhere on the open floor, at any heading."""
    for _ in range(count * 6):
        if count <= 0 or not items:
            return
        item = items[int(rng.integers(len(items)))]
        yaw = rng.uniform(-math.pi, math.pi)
        x, z = rng.uniform(0.3, floor.X - 0.3), rng.uniform(0.3, floor.Z - 0.3)
        box = footprint(item, x, z, yaw)
        if floor.fits(box, gap=0.25):
            floor.take(box, item.size_m[1])
            out.append(Placed(item, yaw_pose(x, 0.0, z, yaw), None if item.role == "person" else _tint(rng)))
            count -= 1


def _clutter(rng, clutter: list[FurnitureItem], holders: list[Placed], out: list[Placed]) -> list[np.ndarray]:
    """Small objects on every top surface at real scale; returns the surfaces' centres for arm viewpoints."""
    centres = []
    for holder in holders:
        top = holder.item.top_m
        if top is None or not clutter:
            continue
        w, _, d = holder.item.size_m
        taken: list[tuple[float, float, float, float]] = []
        for _ in range(int(rng.integers(1, 8))):
            item = clutter[int(rng.integers(len(clutter)))]
            cw, _, cd = item.size_m
            if cw > w * 0.8 or cd > d * 0.8:
                continue
            lyaw = rng.uniform(-math.pi, math.pi)
            lx, lz = rng.uniform(-(w - cw) / 2, (w - cw) / 2), rng.uniform(-(d - cd) / 2, (d - cd) / 2)
            box = footprint(item, lx, lz, lyaw)
            if any(
                not (box[2] <= a or a1 <= box[0] or box[3] <= b or b1 <= box[1]) for a, b, a1, b1 in taken
            ):
                continue
            taken.append(box)
            out.append(Placed(item, holder.pose @ yaw_pose(lx, top, lz, lyaw), _tint(rng)))
        centres.append((holder.pose @ np.array([0.0, top, 0.0, 1.0]))[:3])
    return centres


def _lights(rng, X: float, H: float, Z: float) -> list[LightSpec]:
    """1-3 ceiling lights of random colour temperature, sometimes a spot, sometimes daylight through a window."""
    lights = []
    for _ in range(int(rng.integers(1, 4))):
        warm = rng.uniform(0, 1)
        colour = (1.0, 0.85 + 0.15 * (1 - warm), 0.65 + 0.35 * (1 - warm))
        pos = (rng.uniform(0.3, X - 0.3), H - rng.uniform(0.05, 0.5), rng.uniform(0.3, Z - 0.3))
        kind = "spot" if rng.random() < 0.3 else "point"
        pose = look_at(
            np.array(pos), np.array([pos[0] + rng.normal(0, 0.5), 0.0, pos[2] + rng.normal(0, 0.5)])
        )
        lights.append(LightSpec(kind, pose, colour, float(rng.uniform(4, 16) * (3 if kind == "spot" else 1))))
    if rng.random() < 0.5:
        sun = look_at(
            np.array([rng.uniform(-2, X + 2), H + 2, rng.uniform(-2, Z + 2)]), np.array([X / 2, 0, Z / 2])
        )
        lights.append(LightSpec("directional", sun, (1.0, 0.97, 0.92), float(rng.uniform(1.0, 4.0))))
    return lights


def _intrinsics(rng, h: int, w: int) -> tuple[float, float, float, float]:
    fx = 0.5 * w / math.tan(math.radians(rng.uniform(50, 85)) / 2)
    return (
        fx,
        fx * rng.uniform(0.98, 1.02),
        (w - 1) / 2 + rng.uniform(-0.03, 0.03) * w,
        (h - 1) / 2 + rng.uniform(-0.03, 0.03) * h,
    )


def _views(
    rng, floor: _Floor, H: float, surfaces: list[np.ndarray], h: int, w: int, n: int
) -> list[ViewSpec]:
    """Candidate viewpoints: about half from a mobile robot, the rest from an arm over a surface."""
    views = []
    for _ in range(n):
        fx, fy, cx, cy = _intrinsics(rng, h, w)
        roll = math.radians(float(np.clip(rng.normal(0, 2.0), -5, 5)))
        if surfaces and rng.random() < 0.5:
            target = surfaces[int(rng.integers(len(surfaces)))] + np.array(
                [rng.normal(0, 0.1), 0, rng.normal(0, 0.1)]
            )
            down, dist, yaw = (
                math.radians(rng.uniform(20, 70)),
                rng.uniform(0.4, 1.5),
                rng.uniform(-math.pi, math.pi),
            )
            eye = target + dist * np.array(
                [math.cos(down) * math.sin(yaw), math.sin(down), math.cos(down) * math.cos(yaw)]
            )
            if not (0.1 < eye[0] < floor.X - 0.1 and 0.1 < eye[2] < floor.Z - 0.1 and eye[1] < H - 0.1):
                continue
            views.append(ViewSpec(look_at(eye, target, roll), fx, fy, cx, cy, "arm"))
            continue
        spot = floor.free_point(rng, 0.3)
        if spot is None:
            continue
        height, pitch, yaw = (
            rng.uniform(0.3, 1.8),
            math.radians(rng.uniform(-25, 8)),
            rng.uniform(-math.pi, math.pi),
        )
        eye = np.array([spot[0], height, spot[1]])
        ahead = np.array([math.cos(pitch) * math.sin(yaw), math.sin(pitch), -math.cos(pitch) * math.cos(yaw)])
        views.append(ViewSpec(look_at(eye, eye + ahead, roll), fx, fy, cx, cy, "robot"))
    return views


def sample_furniture_scene(
    rng: np.random.Generator, catalogue: tuple[FurnitureItem, ...], height: int, width: int,
    n_textures: int = 0, candidate_views: int = 16,
) -> FurnitureScene:  # fmt: skip
    """One furnished room with ``candidate_views`` viewpoints, fixed by ``rng``'s state."""
    roles = by_role(catalogue)
    X, Z, H = rng.uniform(3.0, 7.0), rng.uniform(3.0, 7.0), rng.uniform(2.4, 3.1)
    floor, placed = _Floor(X, Z), []
    _table_group(rng, roles, floor, placed)
    wall_pieces = roles.get("surface", []) + roles.get("floor", []) + roles.get("table", [])
    _against_walls(rng, wall_pieces, floor, placed, int(rng.integers(3, 9)))
    _against_walls(rng, roles.get("chair", []), floor, placed, int(rng.integers(0, 3)))
    _standing(rng, roles.get("person", []), floor, placed, int(rng.integers(0, 3)))
    _standing(rng, roles.get("floor", []) + roles.get("chair", []), floor, placed, int(rng.integers(0, 3)))
    holders = [p for p in placed if p.item.role in ("table", "surface")]
    surfaces = _clutter(rng, roles.get("clutter", []), holders, placed)
    _standing(rng, roles.get("clutter", []), floor, placed, int(rng.integers(0, 4)))
    _on_walls(rng, roles.get("wall", []), floor, H, placed, int(rng.integers(0, 4)))
    return FurnitureScene(
        room=(X, H, Z),
        walls=_surface(rng, n_textures, 0.45, 0.45, 0.95),
        floor=_surface(rng, n_textures, 0.85, 0.25, 0.8),
        ceiling=_surface(rng, n_textures, 0.1, 0.7, 0.97),
        placed=placed,
        lights=_lights(rng, X, H, Z),
        ambient=float(rng.uniform(0.15, 0.45)),
        views=_views(rng, floor, H, surfaces, height, width, candidate_views),
    )
