"""Input images: conversion rules, every refusal named, header-based size limits, atomic writers."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgedepth import imageio
from edgedepth.errors import InputError, OutputError
from edgedepth.fileio import atomic_write_bytes
from edgedepth.imageio import (
    as_bgr_image,
    image_header_hw,
    load_image,
    read_png16,
    save_npy,
    save_png16,
    to_bgr_uint8,
)


def _texture(h: int = 16, w: int = 20) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


# --- conversions ----------------------------------------------------------------------------------------


def test_bgr_uint8_passes_through_uncopied() -> None:
    img = _texture()
    assert to_bgr_uint8(img) is img


def test_grey_is_replicated() -> None:
    grey = np.arange(80, dtype=np.uint8).reshape(8, 10)
    for image in (grey, grey[:, :, None]):
        out = to_bgr_uint8(image)
        assert out.shape == (8, 10, 3) and out.dtype == np.uint8
        assert all(np.array_equal(out[:, :, c], grey) for c in range(3))


def test_bgra_drops_alpha() -> None:
    bgra = np.zeros((8, 8, 4), np.uint8)
    bgra[..., 0], bgra[..., 1], bgra[..., 2], bgra[..., 3] = 10, 20, 30, 0
    out = to_bgr_uint8(bgra)
    assert out.shape == (8, 8, 3)
    assert out[0, 0].tolist() == [10, 20, 30]


def test_uint16_scaled_by_1_over_257_rounding() -> None:
    values = np.array([0, 128, 129, 257, 32896, 65534, 65535], np.uint16)
    grey = np.tile(values, (8, 2))  # 8 x 14
    out = to_bgr_uint8(grey)
    assert out[0, :7, 0].tolist() == [0, 0, 1, 1, 128, 255, 255]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_unit_range_scaled_and_rounded(dtype: type) -> None:
    values = np.array([0.0, 0.5 / 255 - 1e-6, 0.5, 1.0, -0.001, 1.001], dtype)
    out = to_bgr_uint8(np.tile(values, (8, 2)))
    assert out[0, :6, 2].tolist() == [0, 0, 128, 255, 0, 255]


def test_non_contiguous_input_is_accepted() -> None:
    img = _texture(32, 40)
    view = img[::2, ::-2]
    out = to_bgr_uint8(view)
    assert out.flags.c_contiguous and np.array_equal(out, view)
    rgb_view = img[:, :, ::-1]
    assert np.array_equal(to_bgr_uint8(rgb_view), rgb_view)


# --- refusals -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (None, "is None"),
        ([[1, 2], [3, 4]], "numpy array"),
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        (np.zeros((1, 1, 3), np.uint8), "at least 8"),
        (np.zeros((16, 16, 7), np.uint8), "1, 3, 4"),
        (np.zeros((3, 16, 16), np.uint8), "channel-first"),
        (np.zeros((2, 16, 16, 3), np.uint8), "2 or 3 dimensions"),
        (np.full((16, 16), 2.0, np.float32), r"\[0, 1\]"),
        (np.full((16, 16), -0.1, np.float64), r"\[0, 1\]"),
        (np.full((16, 16), np.nan, np.float32), "NaN"),
        (np.full((16, 16), np.inf, np.float32), "NaN or inf"),
        (np.zeros((16, 16), bool), "bool"),
        (np.zeros((16, 16), np.int32), "'uint8', 'uint16'"),
    ],
)
def test_bad_arrays_are_named(image: object, match: str) -> None:
    with pytest.raises(InputError, match=match):
        as_bgr_image(image)  # type: ignore[arg-type]


def test_max_pixels_option_is_checked() -> None:
    with pytest.raises(InputError, match="max_pixels"):
        to_bgr_uint8(_texture(), max_pixels=0)
    with pytest.raises(InputError, match="max_pixels=100"):
        to_bgr_uint8(_texture(), max_pixels=100)
    assert to_bgr_uint8(_texture(), max_pixels=None).shape == (16, 20, 3)


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (100_000, 100_000, 3)),
        lambda: np.lib.stride_tricks.as_strided(np.zeros(4, np.float32), (200_000, 50_000), (0, 0)),
    ],
)
def test_huge_array_views_refused_before_any_copy(
    make: Callable[[], np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    view = make()  # terabytes of logical size, no real memory
    monkeypatch.setattr(np, "ascontiguousarray", _must_not_run)
    with pytest.raises(InputError, match="exceeds max_pixels"):
        as_bgr_image(view)


def _must_not_run(*args: object, **kwargs: object) -> None:
    raise AssertionError("the image was converted before its size was checked")


# --- files ----------------------------------------------------------------------------------------------


def test_files_of_each_kind_load_by_the_same_rules(tmp_path: Path) -> None:
    img = _texture()
    grey16 = (np.arange(16 * 20, dtype=np.uint16).reshape(16, 20) * 200).astype(np.uint16)
    bgra = np.dstack([img, np.full(img.shape[:2], 9, np.uint8)])
    cases = {"c.png": img, "c.bmp": img, "g16.png": grey16, "a.png": bgra, "l.webp": img}
    for name, data in cases.items():
        params = [cv2.IMWRITE_WEBP_QUALITY, 101] if name.endswith(".webp") else []
        assert cv2.imwrite(str(tmp_path / name), data, params)
    assert np.array_equal(load_image(tmp_path / "c.png"), img)
    assert np.array_equal(load_image(tmp_path / "c.bmp"), img)
    assert np.array_equal(load_image(str(tmp_path / "a.png")), img)
    assert np.array_equal(load_image(tmp_path / "l.webp"), img)
    assert np.array_equal(load_image(tmp_path / "g16.png"), to_bgr_uint8(grey16))


@pytest.mark.parametrize(
    ("ext", "params"),
    [(".png", []), (".jpg", []), (".bmp", []), (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]), (".webp", [])],
)
def test_header_sizes_match_the_decoded_image(tmp_path: Path, ext: str, params: list[int]) -> None:
    path = tmp_path / f"x{ext}"
    assert cv2.imwrite(str(path), _texture(24, 40), params)
    with path.open("rb") as f:
        assert image_header_hw(f) == (24, 40)


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nope.jpg"
    with pytest.raises(InputError, match=r"nope\.jpg.*does not exist"):
        as_bgr_image(path)


def test_text_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("these are not pixels\n" * 20)
    with pytest.raises(InputError, match=r"notes\.png"):
        load_image(path)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_truncated_images_are_named(tmp_path: Path, ext: str) -> None:
    _, encoded = cv2.imencode(ext, _texture(64, 64))
    data = encoded.tobytes()
    for cut in (len(data) // 2, len(data) - 2):
        path = tmp_path / f"cut{cut}{ext}"
        path.write_bytes(data[:cut])
        with pytest.raises(InputError, match=f"cut{cut}"):
            load_image(path)


def test_oversized_png_header_refused_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    data = imageio.PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
    path = tmp_path / "bomb.png"
    path.write_bytes(data + _png_chunk(b"IEND", b""))
    monkeypatch.setattr(imageio.cv2, "imdecode", _must_not_run)
    with pytest.raises(InputError, match=r"bomb.png.*100000x100000.*exceeds max_pixels"):
        load_image(path)


def test_oversized_jpeg_header_refused_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, 60_000, 60_000, 3) + bytes(9)
    path = tmp_path / "bomb.jpg"
    path.write_bytes(b"\xff\xd8" + b"\xff\xe0" + struct.pack(">H", 6) + b"JFIF" + sof + b"\xff\xd9")
    monkeypatch.setattr(imageio.cv2, "imdecode", _must_not_run)
    with pytest.raises(InputError, match=r"bomb\.jpg.*exceeds max_pixels"):
        load_image(path)


def test_real_photographs_load(images_dir: Path) -> None:
    paths = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if not paths:
        pytest.skip(f"no .jpg/.png files in {images_dir.name}")
    for path in paths:
        image = load_image(path)
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8, path.name
        with path.open("rb") as f:
            hw = image_header_hw(f)
        assert hw in (image.shape[:2], image.shape[1::-1]), path.name  # EXIF may rotate


# --- writers --------------------------------------------------------------------------------------------


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    with pytest.raises(OutputError, match="missing_folder"):
        atomic_write_bytes(tmp_path / "missing_folder" / "x.bin", b"x")


def test_interrupted_save_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "a.npy"
    save_npy(target, np.arange(5))

    class Boom(Exception):
        pass

    with pytest.raises(Boom), imageio.atomic_open(target) as f:
        f.write(b"partial")
        raise Boom
    assert np.array_equal(np.load(target), np.arange(5))
    assert [p.name for p in tmp_path.iterdir()] == ["a.npy"]


def test_png16_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    inv = rng.uniform(0.05, 3.0, (30, 40)).astype(np.float32)
    info = save_png16(tmp_path / "d.png", inv)
    sidecar = json.loads((tmp_path / "d.json").read_text())
    assert sidecar["scale"] == pytest.approx(info["scale"]) and sidecar["offset"] == pytest.approx(inv.min())
    raw = cv2.imread(str(tmp_path / "d.png"), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.min() == 0 and raw.max() == 65535
    back = read_png16(tmp_path / "d.png")
    assert back.shape == inv.shape and np.abs(back - inv).max() <= info["scale"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.json", "d.png"]


def test_png16_refusals_and_a_png_that_describes_itself(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="NaN"):
        save_png16(tmp_path / "n.png", np.full((4, 4), np.nan))
    with pytest.raises(InputError, match=r"'\.png'"):
        save_png16(tmp_path / "n.tif", np.ones((4, 4)))
    # The scale travels inside the PNG: a lost or mismatched sidecar (a crash between the two writes) no
    # longer matters.
    save_png16(tmp_path / "a.png", np.eye(4) * 3)
    (tmp_path / "a.json").unlink()
    assert np.allclose(read_png16(tmp_path / "a.png"), np.eye(4) * 3, atol=1e-4)
    save_png16(tmp_path / "b.png", np.eye(4))
    save_png16(tmp_path / "c.png", np.ones((5, 5)) * 7)
    (tmp_path / "c.json").replace(tmp_path / "b.json")
    assert np.allclose(read_png16(tmp_path / "b.png"), np.eye(4), atol=1e-4)
    # A plain 16-bit PNG (from elsewhere) still reads through its sidecar, and without one says so.
    cv2.imwrite(str(tmp_path / "plain.png"), np.full((4, 4), 100, np.uint16))
    with pytest.raises(InputError, match=r"holds no scale.*sidecar"):
        read_png16(tmp_path / "plain.png")
    (tmp_path / "plain.json").write_text(json.dumps({"scale": 0.5, "offset": 1.0}))
    assert np.allclose(read_png16(tmp_path / "plain.png"), 51.0)


def _tiff_header(width: int, height: int) -> bytes:
    """A little-endian TIFF whose first IFD claims ``width`` x ``height`` (the pixel data is never reached)."""
    import struct

    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 8), (262, 3, 1), (273, 4, 200)]
    ifd = b"".join(
        struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", v, 0) if kind == 3 else struct.pack("<I", v))
        for tag, kind, v in entries
    )
    data = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)) + ifd + struct.pack("<I", 0)
    return data + b"\x00" * (300 - len(data))


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("empty.jpg", b"", "empty"),
        ("huge.gif", b"GIF89a\xff\xff\xff\xff" + b"\x00" * 30, "65535x65535"),
        ("huge.pgm", b"P5\n# a comment\n65535 65535\n255\n" + b"\x00" * 64, "65535x65535"),
        ("huge.tif", _tiff_header(30000, 30000), "30000x30000"),
    ],
)
def test_bombs_and_empty_files_are_refused_before_decoding(
    tmp_path: Path, name: str, content: bytes, match: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=match):
        load_image(path)


def test_a_file_name_the_file_system_refuses_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read image file"):
        load_image(tmp_path / ("x" * 300 + ".png"))


def test_opencv_decodes_under_the_pixel_limit() -> None:
    """The backstop for formats whose header is not read: OpenCV's own limit, set before any decode."""
    import os

    assert int(os.environ[imageio.DECODE_LIMIT_ENV]) <= imageio.DEFAULT_MAX_PIXELS
