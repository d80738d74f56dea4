"""What a synthetic scene is: materials, analytic primitives, the pinhole camera, lights and post-processing,
plus the rotations that place them. ``scenes.py`` samples these at random; ``synthetic.py`` renders them.

Units are metres; the world frame is right-handed with +Z up and the floor or ground at z = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: z-depth given to sky pixels (and to ground farther than this): a large finite stand-in for infinity.
SKY_DEPTH_M = 100.0
_I3 = np.eye(3)


@dataclass(frozen=True)
class Material:
    """Albedo = tint * (1 - mix + mix * texture); ``tex`` indexes the texture bank modulo its size."""

    tex: int = -1
    scale: float = 200.0  # texels of the full-size texture per metre
    offset: tuple[float, float] = (0.0, 0.0)
    tint: tuple[float, float, float] = (0.6, 0.6, 0.6)  # linear BGR
    mix: float = 0.0
    spec: float = 0.0


@dataclass
class Primitive:
    """An analytic shape in its own frame, placed by ``rot`` (object-to-world) and ``center``.

    kind: "box"/"room" (half extents; a room is seen from inside), "sphere" (radius in size[0]), "cylinder"
    (radius size[0], half height size[2], axis local z), "quad" (half extents size[0:2], normal local z) or
    "plane" (infinite, normal local z). Box and room faces use ``materials[(2 * axis + positive) % len]``,
    cylinders ``materials[0]`` on the side and ``materials[-1]`` on the caps.
    """

    kind: str
    center: np.ndarray
    size: np.ndarray
    materials: tuple[Material, ...]
    rot: np.ndarray = field(default_factory=lambda: _I3.copy())
    casts_shadow: bool = True

    @property
    def radius(self) -> float:
        s = self.size
        return {
            "box": float(np.linalg.norm(s)),
            "sphere": float(s[0]),
            "cylinder": math.hypot(s[0], s[2]),
            "quad": math.hypot(s[0], s[1]),
        }.get(self.kind, math.inf)


@dataclass(frozen=True)
class Camera:
    """Pinhole camera: position, camera-to-world rotation and intrinsics in pixels."""

    pos: np.ndarray
    rot: np.ndarray  # camera-to-world; columns are the camera's right, down and forward axes
    fx: float
    fy: float
    cx: float
    cy: float


@dataclass(frozen=True)
class Light:
    """A Lambertian light source."""

    vec: np.ndarray  # position of a point light, or unit direction towards a directional one
    color: np.ndarray
    directional: bool = False
    falloff: float = 0.0  # irradiance / (1 + falloff * distance²)


@dataclass(frozen=True)
class Post:
    """Image degradations applied after shading, so that frames are not too clean."""

    exposure: float = 0.8  # brightness the 97th percentile maps to
    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)
    vignette: float = 0.0
    blur: float = 0.0
    noise: float = 0.0
    jpeg: int = 0  # JPEG quality to round-trip through; 0: none
    seed: int = 0


@dataclass
class Scene:
    """Everything render_scene needs: camera, primitives, lights, ambient, optional sky and fog, post."""

    kind: str
    camera: Camera
    prims: list[Primitive]
    lights: list[Light]
    ambient: np.ndarray
    sky: tuple[np.ndarray, np.ndarray] | None = None  # horizon and zenith colours
    fog_m: float = 0.0
    shadows: bool = False
    post: Post | None = None


def rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def look_rotation(forward: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """Camera-to-world rotation looking along ``forward`` with a level horizon turned by ``roll`` radians."""
    f = np.asarray(forward, float) / np.linalg.norm(forward)
    up = np.array([0.0, 0.0, 1.0]) if abs(f[2]) < 0.99 else np.array([0.0, 1.0, 0.0])
    right = _cross(f, up)
    right /= np.linalg.norm(right)
    down = _cross(f, right)
    c, s = math.cos(roll), math.sin(roll)
    return np.stack([c * right + s * down, -s * right + c * down, f], axis=1)


def heading(yaw: float, pitch: float) -> np.ndarray:
    """Unit vector with compass angle ``yaw`` from +Y towards +X, tilted down by ``pitch``."""
    return np.array([math.sin(yaw) * math.cos(pitch), math.cos(yaw) * math.cos(pitch), -math.sin(pitch)])
