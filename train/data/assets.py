"""Real 3D furniture assets: Debian's ``sweethome3d-furniture`` libraries, read in place.

Each library is a ``.sh3f`` zip holding OBJ/MTL models and ``PluginFurnitureCatalog.properties``, which gives
every model's name, category, real size in centimetres, the height of its top surface and its rotation. Only
the five libraries of that package are used (CC0 and CC-BY 3.0, listed in its copyright file); the models inside
Sweet Home 3D's own jar are GPL and are never read. Assets are never copied or redistributed: models trained on
renders of them name the libraries in their model card (``ATTRIBUTION``).

Models are loaded with trimesh, scaled to their catalogue size in metres (Sweet Home 3D's convention: width
along x, height along y, depth along z), centred on x/z with their base at y = 0. Parts whose texture has no
UV coordinates (which would crash pyrender's shader) become plain colours.
"""

from __future__ import annotations

import functools
import io
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgedepth.errors import DataError

ASSET_DIR = Path("/usr/share/sweethome3d/furniture")
INSTALL_HINT = "apt-get install sweethome3d-furniture"
LIBRARIES = ("BlendSwap-CC-0", "BlendSwap-CC-BY", "KatorLegaz", "Reallusion", "Scopia")
CATALOGUE = "PluginFurnitureCatalog.properties"
ATTRIBUTION = (
    "Furniture renders use the Sweet Home 3D furniture libraries packaged by Debian (sweethome3d-furniture): "
    "Blend Swap CC-0 (public domain) and Blend Swap CC-BY models (CC-BY 3.0, their authors as named in each "
    "model's licence file), Andrew Kator & Jennifer Legaz (CC-BY 3.0 US), Reallusion (CC-BY 3.0 US) and "
    "Emmanuel Puybaret / eTeks and Scopia Visual Interfaces Systems (CC-BY 3.0 Unported); converted to OBJ by "
    "Emmanuel Puybaret. The assets themselves are not redistributed."
)

# Roles decide where a model may stand in a scene.
SKIPPED_CATEGORIES = frozenset({"Doors and windows", "Vehicles", "Staircases", "Exterior"})
_CHAIR = re.compile(r"\b(chair|stool|seat)\b", re.I)
_TABLE = re.compile(r"\b(table|desk)\b", re.I)
_PERSON = re.compile(r"\b(human|people|man|woman|boy|girl)\b", re.I)


class AssetError(DataError):
    """An asset library is missing, or one model cannot be used (counted and skipped by the renderer)."""


@dataclass(frozen=True)
class FurnitureItem:
    """One catalogue entry; sizes in metres: ``size_m`` = (width x, height y, depth z)."""

    library: str
    id: str
    name: str
    category: str
    tags: tuple[str, ...]
    size_m: tuple[float, float, float]
    top_m: float | None  # height of the surface other things stand on, if any
    elevation_m: float  # > 0: mounted on a wall at that height
    model: str  # member path inside the library archive
    rotation: tuple[float, ...] | None  # 3x3 row-major model rotation
    licence: str

    @property
    def role(self) -> str:
        """person, chair, table, surface, clutter, wall or floor."""
        text = f"{self.name} {' '.join(self.tags)}"
        w, h, d = self.size_m
        if self.category == "Characters":
            return "person" if _PERSON.search(text) and h > 1.2 else "floor"
        if self.elevation_m > 0:
            return "wall"
        if max(self.size_m) <= 0.45:
            return "clutter"
        if _CHAIR.search(text) and h <= 1.3:
            return "chair"
        top = self.top_m
        surface = top is not None and 0.35 <= top <= 1.3 and top >= 0.6 * h and w * d >= 0.12
        if surface:
            return "table" if _TABLE.search(text) else "surface"
        return "floor"


def parse_properties(text: str) -> dict[str, str]:
    """A Java .properties file (the subset the catalogues use: key=value lines, # comments, \\uXXXX)."""
    out = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#!" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        out[key.strip()] = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), value.strip())
    return out


def parse_catalogue(text: str, library: str) -> list[FurnitureItem]:
    """The entries of one ``PluginFurnitureCatalog.properties``; an entry missing a required key is skipped."""
    props = parse_properties(text)
    licence = props.get("license", "")
    entries: dict[str, dict[str, str]] = {}
    for key, value in props.items():
        name, sep, index = key.partition("#")
        if sep and index.isdigit():
            entries.setdefault(index, {})[name] = value
    items = []
    for index in sorted(entries, key=int):
        e = entries[index]
        try:
            size = (float(e["width"]) / 100, float(e["height"]) / 100, float(e["depth"]) / 100)
            # Sweet Home 3D's convention: no dropOnTopElevation means the top is the height; negative, no top.
            top = float(e.get("dropOnTopElevation", e["height"]))
            rotation = tuple(float(v) for v in e["modelRotation"].split()) if "modelRotation" in e else None
            item = FurnitureItem(
                library=library,
                id=e.get("id", f"{library}#{index}"),
                name=e["name"],
                category=e["category"],
                tags=tuple(t.strip() for t in e.get("tags", "").split(",") if t.strip()),
                size_m=size,
                top_m=top / 100 if top >= 0 else None,
                elevation_m=float(e.get("elevation", "0")) / 100,
                model=e["model"].lstrip("/"),
                rotation=rotation,
                licence=licence,
            )
        except (KeyError, ValueError):
            continue
        if min(item.size_m) < 0 or max(item.size_m) <= 0 or (rotation is not None and len(rotation) != 9):
            continue
        items.append(item)
    return items


def library_paths(asset_dir: str | Path = ASSET_DIR) -> list[Path]:
    """The five permissive libraries; raise AssetError with the install command when they are absent."""
    root = Path(asset_dir)
    paths = [root / f"{name}.sh3f" for name in LIBRARIES]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise AssetError(
            f"furniture libraries missing from {root}: {', '.join(missing)}; install them with "
            f"`{INSTALL_HINT}` (Debian/Ubuntu) or pass the folder that holds the .sh3f files"
        )
    return paths


@functools.lru_cache(maxsize=4)
def load_catalogue(asset_dir: str = str(ASSET_DIR)) -> tuple[FurnitureItem, ...]:
    """Every usable entry of the five libraries, in a fixed order (library, then catalogue index)."""
    items: list[FurnitureItem] = []
    for path in library_paths(asset_dir):
        with zipfile.ZipFile(path) as zf:
            text = zf.read(CATALOGUE).decode("latin-1")
        items += [i for i in parse_catalogue(text, path.stem) if i.category not in SKIPPED_CATEGORIES]
    return tuple(items)


def by_role(items: Iterable[FurnitureItem]) -> dict[str, list[FurnitureItem]]:
    out: dict[str, list[FurnitureItem]] = {}
    for item in items:
        out.setdefault(item.role, []).append(item)
    return out


# ------------------------------------------------------------------------------------------ mesh loading


class _ZipResolver:
    """trimesh resolver for an OBJ's MTL and textures inside the library archive (paths relative to it)."""

    def __init__(self, zf: zipfile.ZipFile, folder: str) -> None:
        self.zf, self.folder = zf, folder

    def get(self, name: str) -> bytes:
        return self.zf.read(self.folder + name.replace("\\", "/").lstrip("./"))

    __getitem__ = get  # trimesh's OBJ reader asks for the MTL file this way

    def namespaced(self, namespace: str) -> _ZipResolver:
        return _ZipResolver(self.zf, self.folder + namespace.rstrip("/") + "/")

    def keys(self) -> list[str]:
        return [n[len(self.folder) :] for n in self.zf.namelist() if n.startswith(self.folder)]

    def write(self, name: str, data: Any) -> None:
        raise NotImplementedError("asset archives are read-only")


@functools.lru_cache(maxsize=8)
def _archive(path: str) -> zipfile.ZipFile:
    return zipfile.ZipFile(path)


def _plain_colours(mesh: Any) -> Any:
    """Replace a texture that cannot be sampled (no UVs, or no image) by its material's diffuse colour."""
    import trimesh

    visual = mesh.visual
    if isinstance(visual, trimesh.visual.TextureVisuals):
        image = getattr(visual.material, "image", None)
        if visual.uv is None or image is None:
            colour = np.asarray(visual.material.main_color, dtype=np.uint8)
            mesh.visual = trimesh.visual.ColorVisuals(mesh, face_colors=np.tile(colour, (len(mesh.faces), 1)))
    return mesh


@functools.lru_cache(maxsize=160)
def load_mesh(item: FurnitureItem, asset_dir: str = str(ASSET_DIR)) -> tuple[Any, ...]:
    """The model's parts as trimesh meshes in metres, x/z centred, base at y = 0; AssetError if unusable."""
    import trimesh

    zf = _archive(str(Path(asset_dir) / f"{item.library}.sh3f"))
    folder = item.model.rsplit("/", 1)[0] + "/" if "/" in item.model else ""
    try:
        data = zf.read(item.model)
        loaded = trimesh.load(
            io.BytesIO(data), file_type=Path(item.model).suffix.lstrip(".").lower(),
            resolver=_ZipResolver(zf, folder), force="scene",
        )  # fmt: skip
        parts = [g for g in loaded.dump() if isinstance(g, trimesh.Trimesh) and len(g.faces)]
    except Exception as exc:  # trimesh raises many types for broken files; each becomes one skip
        raise AssetError(f"{item.library}:{item.model}: cannot load ({type(exc).__name__}: {exc})") from None
    if not parts:
        raise AssetError(f"{item.library}:{item.model}: no triangles")
    rot = np.asarray(item.rotation, dtype=np.float64).reshape(3, 3) if item.rotation else np.eye(3)
    verts = [np.asarray(p.vertices, dtype=np.float64) @ rot.T for p in parts]
    lo = np.min([v.min(0) for v in verts], axis=0)
    hi = np.max([v.max(0) for v in verts], axis=0)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise AssetError(f"{item.library}:{item.model}: non-finite vertices")
    extent = np.maximum(hi - lo, 1e-9)
    scale = np.asarray(item.size_m) / extent
    offset = np.array([(lo[0] + hi[0]) / 2, lo[1], (lo[2] + hi[2]) / 2])
    out = []
    for part, v in zip(parts, verts, strict=True):
        part.vertices = (v - offset) * scale
        out.append(_plain_colours(part))
    return tuple(out)
