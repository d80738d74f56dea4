"""Input images for the estimator, and atomic writers for its outputs.

Rules of :func:`to_bgr_uint8` (the estimator always sees HxWx3 BGR uint8): HxW, HxWx1 grey (replicated);
HxWx3 BGR; HxWx4 BGRA (alpha dropped); channel-last only. uint8 as is; uint16 x 1/257, rounded; float16/32/64
in [0, 1] (half a grey level of tolerance, clipped) x 255, rounded; bool and other dtypes refused. Sizes are
checked before anything is converted or copied: arrays from their shape, files from their header (PNG, JPEG,
BMP, WebP parsed without decoding; other formats decode first, under OpenCV's ``CV_IO_MAX_IMAGE_PIXELS``).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from .errors import InputError, choices
from .fileio import atomic_open, atomic_write_bytes

DEFAULT_MAX_PIXELS = 64_000_000
MIN_SIDE = 8
FLOAT_TOLERANCE = 0.5 / 255  # half a grey level: rounds to 0 or 255 anyway
ACCEPTED_DTYPES = ("uint8", "uint16", "float16", "float32", "float64")
ACCEPTED_CHANNELS = (1, 3, 4)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG16_MAX = 65535
# OpenCV refuses to decode images over this many pixels (it reads the variable once, at its first decode):
# the backstop for formats whose header edgedepth does not read. A user's own setting wins.
DECODE_LIMIT_ENV = "OPENCV_IO_MAX_IMAGE_PIXELS"
os.environ.setdefault(DECODE_LIMIT_ENV, str(DEFAULT_MAX_PIXELS))
ARRAY = "image array"
ImageLike = np.ndarray | str | os.PathLike[str]
MaxPixels = int | None


def as_bgr_image(image: ImageLike, max_pixels: MaxPixels = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The estimator's entry point: an array or an image path -> contiguous HxWx3 BGR uint8."""
    if isinstance(image, str | os.PathLike):
        return load_image(image, max_pixels=max_pixels)
    return to_bgr_uint8(image, max_pixels=max_pixels)


def to_bgr_uint8(
    image: np.ndarray, *, max_pixels: MaxPixels = DEFAULT_MAX_PIXELS, source: str = ARRAY
) -> np.ndarray:
    """Convert an array by the module's rules; a contiguous HxWx3 uint8 input is returned itself, uncopied."""
    check_image_array(image, max_pixels=max_pixels, source=source)
    arr = image
    if arr.ndim == 3 and arr.shape[2] != 3:
        arr = arr[:, :, 0] if arr.shape[2] == 1 else arr[:, :, :3]  # views: grey, or BGRA minus alpha
    if arr.dtype == np.uint16:
        arr = ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif arr.dtype.kind == "f":
        arr = np.clip(np.rint(arr * np.float32(255)), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr)


def check_image_array(
    image: object, *, max_pixels: MaxPixels = DEFAULT_MAX_PIXELS, source: str = ARRAY
) -> None:
    """Raise InputError unless ``image`` is an array that :func:`to_bgr_uint8` accepts (shape first, no copy)."""
    if image is None:
        raise InputError(f"{source} is None (cv2.imread returns None for a file it cannot read)")
    if not isinstance(image, np.ndarray):
        raise InputError(
            f"expected a numpy array (HxW, HxWx1, HxWx3 BGR or HxWx4 BGRA) or an image path, got "
            f"{type(image).__name__}; convert a PIL image with np.asarray(img)[:, :, ::-1]"
        )
    shape = image.shape
    if image.ndim not in (2, 3):
        raise InputError(f"{source}: expected 2 or 3 dimensions (HxW or HxWxC), got shape {shape}")
    if 0 in shape:
        raise InputError(f"{source} is empty (shape {shape})")
    if image.ndim == 3 and shape[2] not in ACCEPTED_CHANNELS:
        hint = " (channel-first CxHxW? transpose to HxWxC)" if shape[0] in ACCEPTED_CHANNELS else ""
        raise InputError(f"{source}: {shape[2]} channels in {shape}; use {choices(ACCEPTED_CHANNELS)}{hint}")
    if image.dtype == np.bool_:
        raise InputError(f"{source}: bool images are ambiguous; pass mask.astype(np.uint8) * 255 instead")
    if image.dtype.name not in ACCEPTED_DTYPES:
        raise InputError(f"{source}: dtype {image.dtype} is not accepted; use {choices(ACCEPTED_DTYPES)}")
    check_size((int(shape[0]), int(shape[1])), max_pixels, source)
    if image.dtype.kind == "f":
        lo, hi = float(image.min()), float(image.max())  # NaN/inf propagate: no mask allocated
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise InputError(f"{source}: float image contains NaN or inf")
        if lo < -FLOAT_TOLERANCE or hi > 1 + FLOAT_TOLERANCE:
            raise InputError(f"{source}: float images must be in [0, 1] (x255), got [{lo:.4g}, {hi:.4g}]")


def check_size(hw: tuple[int, int], max_pixels: MaxPixels, source: str, min_side: int = MIN_SIDE) -> None:
    """Refuse images under ``min_side`` on a side or over ``max_pixels`` (None disables the upper limit)."""
    h, w = hw
    if min(h, w) < min_side:
        raise InputError(f"{source}: {w}x{h} pixels is too small; each side needs at least {min_side} pixels")
    if max_pixels is None:
        return
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise InputError(f"max_pixels={max_pixels!r} must be a positive int or None (no limit)")
    if h * w > max_pixels:
        mp = f"{w}x{h} = {h * w / 1e6:.1f} megapixels"
        raise InputError(f"{source}: {mp} exceeds max_pixels={max_pixels}; downscale it or raise max_pixels")


def load_image(path: str | os.PathLike[str], max_pixels: MaxPixels = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as HxWx3 BGR uint8, refusing oversized ones from their header before decoding.

    Grey and 16-bit files follow the module's rules. IMREAD_ANYDEPTH | IMREAD_ANYCOLOR, not IMREAD_UNCHANGED:
    it keeps EXIF orientation, and the decoder drops alpha itself.
    """
    data = _read_checked(Path(path), max_pixels)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    except cv2.error as exc:  # e.g. a header over OpenCV's decode limit (see DECODE_LIMIT_ENV)
        message = " ".join(str(exc).split())[-160:]
        raise InputError(f"{path}: OpenCV refuses to decode it ({message})") from None
    if image is None or image.size == 0:
        raise InputError(f"{path}: not an image OpenCV can decode (unknown format, corrupt or truncated)")
    return to_bgr_uint8(image, max_pixels=max_pixels, source=str(path))


def check_image_file(
    path: str | os.PathLike[str], max_pixels: MaxPixels = DEFAULT_MAX_PIXELS, min_side: int = MIN_SIDE
) -> None:
    """Refuse, without decoding, a path that is not a readable file or whose header gives a size out of
    bounds: what a command checks for all its inputs before it loads a model."""
    _read_checked(Path(path), max_pixels, min_side, header_only=True)


def _read_checked(
    path: Path, max_pixels: MaxPixels, min_side: int = MIN_SIDE, header_only: bool = False
) -> bytes:
    """The file's bytes, after the header size check and (JPEG, PNG) a check that the file is complete."""
    try:
        if not path.is_file():
            problem = "is not a file" if path.exists() else "does not exist"
            raise InputError(f"image file {_short(path)} {problem}")
        with path.open("rb") as f:
            if (hw := image_header_hw(f)) is not None:
                check_size(hw, max_pixels, str(path), min_side)
            if header_only:
                return b""
            f.seek(0)
            data = f.read()
    except OSError as exc:  # unreadable, or a name the file system refuses (too long, ...)
        raise InputError(f"cannot read image file {_short(path)}: {exc.strerror or exc}") from None
    if not data:
        raise InputError(f"{path}: the image file is empty (0 bytes)")
    if _is_truncated(data):
        raise InputError(f"{path}: the image file is truncated or corrupt (no end marker)")
    return data


def _short(path: Path, limit: int = 160) -> str:
    """A path for an error message: a very long file name is cut after its first 60 characters."""
    text = str(path)
    return (
        text if len(text) <= limit else f"{path.parent}/{path.name[:60]}... ({len(path.name)}-character name)"
    )


def image_header_hw(f: IO[bytes]) -> tuple[int, int] | None:
    """(height, width) from a PNG, JPEG, BMP, WebP, GIF, PNM or TIFF header without decoding; None for other
    or bad headers (OpenCV's decode limit then applies, see DECODE_LIMIT_ENV)."""
    head = f.read(32)
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        w, h = struct.unpack("<HH", head[6:10])
        return h, w
    if len(head) >= 3 and head[0:1] == b"P" and head[1:2] in b"123456" and head[2:3].isspace():
        return _pnm_hw(f)
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff_hw(f, "<" if head[:2] == b"II" else ">")
    if head.startswith(PNG_SIGNATURE) and head[12:16] == b"IHDR" and len(head) >= 24:
        w, h = struct.unpack(">II", head[16:24])
        return h, w
    if head.startswith(b"BM") and len(head) >= 26:
        fmt = "<HH" if struct.unpack("<I", head[14:18])[0] == 12 else "<ii"  # 12: OS/2 BITMAPCOREHEADER
        w, h = struct.unpack(fmt, head[18 : 18 + struct.calcsize(fmt)])
        return abs(h), abs(w)  # a negative height means top-down rows
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) >= 30:
        return _webp_hw(head)
    if head.startswith(b"\xff\xd8"):
        f.seek(0)
        for marker, payload in _jpeg_segments(f):
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn
                sof = f.read(5)
                h, w = struct.unpack(">HH", sof[1:5]) if len(sof) == 5 and payload >= 5 else (0, 0)
                return (h, w) if h and w else None  # h == 0: defined later by DNL
            if marker == 0xDA:
                return None
    return None


def _pnm_hw(f: IO[bytes]) -> tuple[int, int] | None:
    """Width and height, the first two numbers after the magic (comments start with #)."""
    f.seek(2)
    text = f.read(512).decode("ascii", "replace")
    numbers = re.findall(r"\d+", re.sub(r"#[^\n]*", " ", text))
    return (int(numbers[1]), int(numbers[0])) if len(numbers) >= 2 else None


def _tiff_hw(f: IO[bytes], order: str) -> tuple[int, int] | None:
    """ImageLength and ImageWidth (tags 257, 256) of the first IFD; the largest of all IFDs is not needed:
    OpenCV decodes the first page."""
    f.seek(4)
    raw = f.read(4)
    if len(raw) < 4:
        return None
    f.seek(struct.unpack(order + "I", raw)[0])
    raw = f.read(2)
    if len(raw) < 2:
        return None
    sizes: dict[int, int] = {}
    for _ in range(min(struct.unpack(order + "H", raw)[0], 512)):
        entry = f.read(12)
        if len(entry) < 12:
            break
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257):
            sizes[tag] = struct.unpack(
                order + ("H" if kind == 3 else "I"), entry[8 : 10 if kind == 3 else 12]
            )[0]
    return (sizes[257], sizes[256]) if 256 in sizes and 257 in sizes else None


def _webp_hw(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8X":
        return 1 + int.from_bytes(head[27:30], "little"), 1 + int.from_bytes(head[24:27], "little")
    if chunk == b"VP8L" and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", head[26:30])
        return h & 0x3FFF, w & 0x3FFF
    return None


def _jpeg_segments(f: IO[bytes]) -> Iterator[tuple[int, int]]:
    """Walk JPEG markers after SOI: yield (marker, payload length) with ``f`` at the payload; stop after SOS."""
    f.seek(2)
    while True:
        byte = f.read(1)
        if not byte:
            return
        if byte != b"\xff":
            continue  # stray bytes between segments; libjpeg skips them too
        marker = f.read(1)
        while marker == b"\xff":  # fill bytes
            marker = f.read(1)
        if not marker or marker[0] == 0xD9:
            return
        if marker[0] in (0x00, 0x01, 0xD8) or 0xD0 <= marker[0] <= 0xD7:
            continue  # standalone markers carry no length
        raw = f.read(2)
        if len(raw) < 2 or struct.unpack(">H", raw)[0] < 2:
            return
        start, payload = f.tell(), struct.unpack(">H", raw)[0] - 2
        yield marker[0], payload
        if marker[0] == 0xDA:
            return
        f.seek(start + payload)


def _is_truncated(data: bytes) -> bool:
    """True for a PNG without IEND or a JPEG without EOI after its first scan (OpenCV 4 decodes those)."""
    if data.startswith(PNG_SIGNATURE):
        return b"IEND" not in data[-4096:]
    if data.startswith(b"\xff\xd8"):
        f = io.BytesIO(data)
        for marker, payload in _jpeg_segments(f):
            if marker == 0xDA:
                return data.find(b"\xff\xd9", f.tell() + payload) < 0
        return True  # no scan at all
    return False


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Save an array as .npy atomically (no pickled objects)."""
    arr = np.asarray(array)
    if arr.dtype.hasobject:
        raise InputError(f"cannot save {path}: object arrays are not supported; pass a numeric array")
    with atomic_open(path) as f:
        np.save(f, arr, allow_pickle=False)
    return Path(path)


PNG16_KEYWORD = b"edgedepth.png16"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _with_text_chunk(png: bytes, keyword: bytes, text: str) -> bytes:
    """The PNG with a tEXt chunk (``keyword`` NUL ``text``) right after its IHDR chunk."""
    ihdr_end = 8 + 8 + struct.unpack(">I", png[8:12])[0] + 4
    return png[:ihdr_end] + _png_chunk(b"tEXt", keyword + b"\x00" + text.encode("latin-1")) + png[ihdr_end:]


def _text_chunk(png: bytes, keyword: bytes) -> str | None:
    """The text of the PNG's tEXt chunk with ``keyword`` (before the image data), or None."""
    offset = 8
    while offset + 8 <= len(png):
        length = struct.unpack(">I", png[offset : offset + 4])[0]
        kind, data = png[offset + 4 : offset + 8], png[offset + 8 : offset + 8 + length]
        if kind == b"tEXt" and data.startswith(keyword + b"\x00"):
            return data[len(keyword) + 1 :].decode("latin-1")
        if kind in (b"IDAT", b"IEND"):
            return None
        offset += 12 + length
    return None


def encode_png16(
    inverse_depth: np.ndarray, name: str = "depth.png", where: str | None = None
) -> tuple[bytes, dict[str, Any]]:
    """A float map as 16-bit PNG bytes spanning 0..65535, with ``value = png_value * scale + offset`` carried
    inside (a tEXt chunk), and that scale information. ``name`` goes into the info; errors name ``where``
    (default: ``name``)."""
    where = where or name
    values = np.asarray(inverse_depth)
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[:, :, 0]
    if values.ndim != 2 or values.size == 0 or values.dtype.kind not in "fiu":
        raise InputError(
            f"save_png16 {where}: expected an HxW numeric map, got {values.dtype} {values.shape}"
        )
    lo, hi = float(values.min()), float(values.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InputError(f"save_png16 {where}: the map contains NaN or inf, which a PNG cannot store")
    scale = (hi - lo) / PNG16_MAX if hi > lo else 1.0
    png = np.clip(np.rint((values.astype(np.float64) - lo) / scale), 0, PNG16_MAX).astype(np.uint16)
    ok, encoded = cv2.imencode(".png", png)
    if not ok:
        raise InputError(f"save_png16 {where}: OpenCV could not encode the PNG")
    info: dict[str, Any] = {"format": "edgedepth.png16", "formula": "value = png_value * scale + offset"}
    info.update(scale=scale, offset=lo, min=lo, max=hi, png=name)
    return _with_text_chunk(encoded.tobytes(), PNG16_KEYWORD, json.dumps(info)), info


def save_png16(path: str | os.PathLike[str], inverse_depth: np.ndarray) -> dict[str, Any]:
    """Save a float map as a 16-bit PNG (``encode_png16``), written atomically.

    The scale and offset travel inside the PNG (a tEXt chunk), so the one atomic file is always complete;
    a sidecar JSON (``depth.png`` -> ``depth.json``) repeats them for tools that cannot read PNG text.
    Returns the scale information."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InputError(f"save_png16: {path} must end in '.png'")
    data, info = encode_png16(inverse_depth, path.name, str(path))
    atomic_write_bytes(path, data)
    atomic_write_bytes(path.with_suffix(".json"), json.dumps(info, indent=2).encode())
    return info


def read_png16(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a map written by :func:`save_png16` back to float32 (within one quantisation step), from the
    scale inside the PNG (or, for a PNG without it, its sidecar JSON)."""
    path, sidecar = Path(path), Path(path).with_suffix(".json")
    data = _read_checked(path, max_pixels=None, min_side=1)
    text = _text_chunk(data, PNG16_KEYWORD)
    source = f"{path}'s scale chunk"
    if text is None:
        if not sidecar.is_file():
            raise InputError(f"{path}: it holds no scale, and its sidecar {sidecar} is missing")
        text, source = sidecar.read_text(), str(sidecar)
    try:
        info = json.loads(text)
        scale, offset = float(info["scale"]), float(info["offset"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{source}: not a valid png16 scale ({exc!r})") from None
    png = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if png is None or png.dtype != np.uint16 or png.ndim != 2:
        raise InputError(f"{path}: expected a single-channel 16-bit PNG")
    return (png.astype(np.float64) * scale + offset).astype(np.float32)
