"""Every text file a user names (intrinsics, metric points, teacher specs, recipes) is read here.

Only a regular file is read (a symlink to one is followed; a FIFO, a device or a folder is refused, so
nothing hangs on a pipe or reads ``/dev/zero`` until memory runs out), at most ``max_bytes`` of it, as UTF-8
text without NUL bytes. JSON and YAML are parsed with their nesting depth bounded. Every failure is an
InputError naming the file and what it was for.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any, SupportsFloat

from .errors import InputError

MAX_TEXT_BYTES = 4 << 20  # a calibration, a spec, a recipe or a few hundred thousand points
MAX_NESTING = 64


def read_text_input(path: str | os.PathLike[str], what: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The text of the file ``path`` that the user gave as ``what`` (e.g. ``"--intrinsics"``)."""
    p = Path(path)
    try:
        info = p.stat()  # follows a symlink to what it names
    except FileNotFoundError:
        raise InputError(f"{what} {p} does not exist") from None
    except OSError as exc:
        raise InputError(f"{what} {p}: cannot read it ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise InputError(f"{what} {p} is {kind}; name a text file")
    if info.st_size > max_bytes:
        raise InputError(f"{what} {p} is {info.st_size} bytes; at most {max_bytes} are read")
    try:
        with open(p, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise InputError(f"{what} {p}: cannot read it ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise InputError(f"{what} {p} grew past {max_bytes} bytes while being read")
    if b"\x00" in data:
        raise InputError(f"{what} {p} is not a text file (it holds NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} {p} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _check_shape(value: Any, path: Any, what: str, max_nodes: int = 1_000_000) -> None:
    """Refuse data nested deeper than MAX_NESTING, or with more than ``max_nodes`` values counting each
    reference (YAML aliases can make a small file name billions)."""
    stack, nodes = [(value, 0)], 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if depth > MAX_NESTING:
            raise InputError(f"{what} {path}: nested deeper than {MAX_NESTING} levels")
        if nodes > max_nodes:
            raise InputError(f"{what} {path}: more than {max_nodes} values")
        if isinstance(item, dict | list):
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))


def finite_number(value: SupportsFloat) -> bool:
    """math.isfinite, and False (not OverflowError) for an integer too large for a float."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def load_json_input(path: str | os.PathLike[str], what: str) -> Any:
    """Parsed JSON from a user's file; a syntax error, or nesting over MAX_NESTING, is an InputError."""
    text = read_text_input(path, what)
    try:
        value = json.loads(text)
    except RecursionError:
        raise InputError(f"{what} {path}: nested too deeply") from None
    except ValueError as exc:
        raise InputError(f"{what} {path}: not valid JSON ({exc})") from None
    _check_shape(value, path, what)
    return value


def load_yaml_input(path: str | os.PathLike[str], what: str) -> Any:
    """Parsed YAML (safe types only) from a user's file, OpenCV's ``%YAML:1.0`` and ``!!opencv-matrix``
    included (a matrix reads as a mapping of rows, cols, dt and data)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def matrix(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        return loader.construct_mapping(node, deep=True)  # type: ignore[arg-type,unused-ignore]

    Loader.add_constructor("tag:yaml.org,2002:opencv-matrix", matrix)
    text = read_text_input(path, what)
    if text.startswith("%YAML:"):  # OpenCV writes "%YAML:1.0", which YAML parsers reject
        text = text.split("\n", 1)[1] if "\n" in text else ""
    try:
        value = yaml.load(text, Loader=Loader)
    except RecursionError:
        raise InputError(f"{what} {path}: nested too deeply") from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: e.g. an integer of over 4300 digits
        raise InputError(f"{what} {path}: not valid YAML ({' '.join(str(exc).split())[:200]})") from None
    _check_shape(value, path, what)
    return value
