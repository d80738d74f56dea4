"""A tiny furniture library written by the tests: the same .sh3f layout as Debian's sweethome3d-furniture.

Boxes made with trimesh, exported as OBJ with an MTL colour, and a ``PluginFurnitureCatalog.properties``
that sizes them in centimetres, so the real catalogue parser, mesh loader and renderer all run on it.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from edgedepth_train.data.assets import CATALOGUE, LIBRARIES

BOX_OBJ = """mtllib box.mtl
usemtl red
v -1 0 -1
v 1 0 -1
v 1 2 -1
v -1 2 -1
v -1 0 1
v 1 0 1
v 1 2 1
v -1 2 1
f 1 3 2
f 1 4 3
f 5 6 7
f 5 7 8
f 1 2 6
f 1 6 5
f 4 8 7
f 4 7 3
f 1 5 8
f 1 8 4
f 2 3 7
f 2 7 6
"""
BOX_MTL = "newmtl red\nKd 0.9 0.1 0.1\nKa 0 0 0\n"

# (name, category, width, depth, height cm, dropOnTopElevation or None, model member)
ENTRIES = [
    ("Table", "Kitchen", 120, 80, 75, 75, "lib/box/box.obj"),
    ("Chair", "Kitchen", 45, 45, 90, None, "lib/box/box.obj"),
    ("Cup", "Kitchen", 8, 8, 10, None, "lib/box/box.obj"),
    ("Bookcase", "Living room", 90, 35, 180, 180, "lib/box/box.obj"),
    ("Man", "Characters", 50, 30, 180, None, "lib/box/box.obj"),
    ("Lamp", "Lights", 30, 30, 150, -1, "lib/box/box.obj"),
    ("Broken", "Living room", 60, 60, 60, None, "lib/broken/broken.obj"),
]


def catalogue_text(entries: list[tuple] = ENTRIES) -> str:
    lines = ["# test catalogue", "id=Test", "license=Public domain \\u00a9 tests"]
    for i, (name, cat, w, d, h, top, model) in enumerate(entries, start=1):
        lines += [f"id#{i}=Test#{name.lower()}", f"name#{i}={name}", f"category#{i}={cat}", f"tags#{i}=Test",
                  f"model#{i}=/{model}", f"width#{i}={w}", f"depth#{i}={d}", f"height#{i}={h}"]  # fmt: skip
        if top is not None:
            lines.append(f"dropOnTopElevation#{i}={top}")
    lines += ["name#99=Entry without a model or size"]
    return "\n".join(lines) + "\n"


def write_library(folder: Path) -> Path:
    """Write the five library files (the first holds the entries, the others are empty catalogues)."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, lib in enumerate(LIBRARIES):
        with zipfile.ZipFile(folder / f"{lib}.sh3f", "w") as zf:
            zf.writestr(CATALOGUE, catalogue_text() if k == 0 else "id=empty\n")
            if k == 0:
                zf.writestr("lib/box/box.obj", BOX_OBJ)
                zf.writestr("lib/box/box.mtl", BOX_MTL)
                zf.writestr("lib/broken/broken.obj", "v 0 0 nan\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    return folder
