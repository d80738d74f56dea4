"""Deterministic mutants: every file or value is made from a seed, so a failure replays exactly.

- byte mutants of any file: truncations, flipped bytes, overwritten and inserted runs;
- garbled fields: JSON values an attacker or a broken tool could write (``Infinity``, NaN, deep nesting,
  numbers with thousands of digits, wrong types, absurd sizes) put in ONNX metadata, engine headers and
  checkpoint headers;
- ONNX graphs with a wrong-size initializer;
- odd image files.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

DEEP = "[" * 100_000 + "]" * 100_000
GARBLES = (
    "Infinity", "-Infinity", "NaN", DEEP, "1" * 5000, "-" + "9" * 400, "1e999", '"text"', "null", "{}", "[]",
    "true", "3.5", "[1e999, 1]", "[NaN, 1, 1]", "[65536, 65536]", "[0, 0]", "[-32, 64]", "[256]",
    '"\\u0000"', "[[1, 2], [3]]", '{"a": ' * 5000 + "1" + "}" * 5000, "not json", "",
)  # fmt: skip


def byte_mutants(data: bytes, count: int, seed: int) -> Iterator[tuple[str, bytes]]:
    """``count`` corruptions of ``data``: truncations, 1-8 flipped bytes, overwritten or inserted runs."""
    rng = np.random.default_rng(seed)
    n = len(data)
    for i in range(count):
        kind = i % 4
        if kind == 0:
            cut = int(rng.integers(0, n))
            yield f"truncate@{cut}", data[:cut]
        elif kind == 1:
            out = bytearray(data)
            for pos in rng.integers(0, n, int(rng.integers(1, 9))):
                out[pos] ^= int(rng.integers(1, 256))
            yield "flip", bytes(out)
        elif kind == 2:
            start, length = int(rng.integers(0, n)), int(rng.integers(1, 64))
            out = bytearray(data)
            out[start : start + length] = rng.integers(
                0, 256, min(length, n - start), dtype=np.uint8
            ).tobytes()
            yield f"overwrite@{start}", bytes(out)
        else:
            pos = int(rng.integers(0, n))
            yield (
                f"insert@{pos}",
                data[:pos] + rng.integers(0, 256, int(rng.integers(1, 64)), np.uint8).tobytes() + data[pos:],
            )


def onnx_mutants(model_path: Path, count: int, seed: int) -> Iterator[tuple[str, bytes]]:
    """Byte mutants, garbled ``edgedepth.*`` metadata, deleted keys and a wrong-size initializer."""
    data = model_path.read_bytes()
    rng = np.random.default_rng(seed)
    model = onnx.load_from_string(data)
    keys = [p.key for p in model.metadata_props]
    per_kind = count // 4
    yield from byte_mutants(data, per_kind * 2, seed)
    for i in range(per_kind):
        m = onnx.load_from_string(data)
        key = keys[int(rng.integers(len(keys)))]
        value = GARBLES[i % len(GARBLES)]
        for prop in m.metadata_props:
            if prop.key == key:
                prop.value = value
        yield f"meta {key}={value[:20]!r}", m.SerializeToString()
    for i in range(count - per_kind * 3):
        m = onnx.load_from_string(data)
        if i % 2:
            key = keys[int(rng.integers(len(keys)))]
            kept = [p for p in m.metadata_props if p.key != key]
            del m.metadata_props[:]
            m.metadata_props.extend(kept)
            yield f"delete {key}", m.SerializeToString()
        else:
            init = m.graph.initializer[int(rng.integers(len(m.graph.initializer)))]
            arr = numpy_helper.to_array(init)
            bad = np.zeros((int(rng.integers(1, 5)),) * max(arr.ndim, 1), arr.dtype)
            init.CopyFrom(numpy_helper.from_array(bad, init.name))
            yield f"initializer {init.name} {bad.shape}", m.SerializeToString()


def json_garbles(doc: dict, count: int, seed: int) -> Iterator[tuple[str, str]]:
    """The JSON text of ``doc`` with one field (nested too) replaced by a garbled value."""
    rng = np.random.default_rng(seed)
    paths = []

    def walk(node: object, path: tuple) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                paths.append((*path, k))
                walk(v, (*path, k))

    walk(doc, ())
    text = json.dumps(doc)
    for i in range(count):
        path = paths[int(rng.integers(len(paths)))]
        marker = f"__GARBLE_{i}__"
        copy = json.loads(text)
        node = copy
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = marker
        yield (
            f"{'.'.join(map(str, path))}={GARBLES[i % len(GARBLES)][:20]!r}",
            json.dumps(copy).replace(json.dumps(marker), GARBLES[i % len(GARBLES)] or '""'),
        )


def odd_images(folder: Path) -> list[Path]:
    """Image files a robot's disk or a user can produce: empty, truncated, huge headers, wrong formats."""
    import cv2

    ok = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    png = cv2.imencode(".png", ok)[1].tobytes()
    jpg = cv2.imencode(".jpg", ok)[1].tobytes()

    def png_chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    huge_png = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 65535, 65535, 8, 2, 0, 0, 0))
    files = {
        "empty.jpg": b"",
        "empty.png": b"",
        "one_byte.png": b"\x89",
        "truncated.jpg": jpg[: len(jpg) // 2],
        "truncated.png": png[: len(png) // 2],
        "no_end.png": png[:-12],
        "huge.png": huge_png + png_chunk(b"IEND", b""),
        "huge.gif": b"GIF89a\xff\xff\xff\xff" + b"\x00" * 40,
        "huge.pgm": b"P5\n65535 65535\n255\n" + b"\x00" * 64,
        "huge.ppm": b"P6 40000 40000 255\n" + b"\x00" * 64,
        "huge.bmp": b"BM" + b"\x00" * 12 + struct.pack("<Iii", 40, 60000, 60000) + b"\x00" * 40,
        "huge.tif": b"II*\x00" + struct.pack("<IH", 8, 2) + struct.pack("<HHII", 256, 4, 1, 30000)
        + struct.pack("<HHII", 257, 4, 1, 30000) + b"\x00" * 200,
        "huge.webp": b"RIFF\x00\x00\x00\x00WEBPVP8X" + b"\x00" * 8 + b"\xff\xff\x3f\xff\xff\x3f" + b"\x00" * 20,
        "random.jpg": np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "random.png": np.random.default_rng(2).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "text.png": b"this is not an image\n" * 20,
        "png_named.jpg": png,
        "tiny.png": cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))[1].tobytes(),
        "grey16.png": cv2.imencode(".png", np.full((32, 48), 40000, np.uint16))[1].tobytes(),
        "bgra.png": cv2.imencode(".png", np.zeros((32, 48, 4), np.uint8))[1].tobytes(),
        "html.jpg": b"<html><body>404</body></html>",
        "zeros.tif": b"II*\x00" + b"\x00" * 100,
    }  # fmt: skip
    paths = []
    for name, content in files.items():
        (folder / name).write_bytes(content)
        paths.append(folder / name)
    (folder / "folder.png").mkdir()
    paths.append(folder / "folder.png")
    paths.append(folder / ("long" * 80 + ".png"))  # a name the file system refuses
    paths.append(folder / "missing.png")
    return paths
