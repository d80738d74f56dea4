"""Files written so that nothing is lost: atomic writes, and the framed file format.

Every file edgedepth writes goes to a temp file beside its destination and is renamed over it only when
complete, so a reader (or a crash) never sees half a file. :class:`PendingFile` is that temp file for
writers that need a path and stay open a while (a video, an ONNX model); :func:`atomic_open` gives a file
object for one ``with`` block; :func:`atomic_write_bytes` writes bytes. The framed format (magic, header
length, JSON header, payload) holds TensorRT engines and calibration caches.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import struct
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from .errors import ModelLoadError, OutputError

MAX_HEADER_BYTES = 1 << 20
_LENGTH = struct.Struct("<I")


def check_destination(path: str | os.PathLike[str], overwrite: bool = True) -> Path:
    """The file that writing ``path`` will replace: ``path``, or the regular file a symlink there points
    to (written through, the link kept). Anything else (a folder, a device, a FIFO, a socket, a link to
    one of those) raises OutputError naming it, as does an existing file when ``overwrite`` is False.
    Checked before the work starts, so that nothing is computed for an output that cannot be written."""
    path = Path(path)
    target = path.resolve() if path.is_symlink() else path
    if target.exists() or target.is_symlink():
        if not target.is_file():
            kind = "a folder" if target.is_dir() else "not a regular file"
            raise OutputError(f"cannot write {path}: it is {kind}; name a file path")
        if not overwrite:
            raise OutputError(f"{path} exists; pass --overwrite (overwrite=True) to replace it")
    if not target.parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {target.parent} does not exist")
    return target


class PendingFile:
    """A hidden temp file beside ``path`` (``.<name>.<pid>.<random><suffix>``) that becomes ``path`` on
    :meth:`commit` and disappears on :meth:`discard`. A killed process leaves only the temp file behind,
    never a half-written ``path``, and the next write of the same ``path`` removes it (its process is gone).
    Only a regular file (or a symlink to one, written through) is ever replaced; see
    :func:`check_destination`.
    """

    def __init__(self, path: str | os.PathLike[str], suffix: str = ".tmp", overwrite: bool = True) -> None:
        self.path = check_destination(path, overwrite)
        self.shown = Path(path)  # the name the caller gave, for messages
        remove_stale_temps(self.path, suffix)
        try:
            fd, tmp = tempfile.mkstemp(
                prefix=f".{self.path.name}.{os.getpid()}.", suffix=suffix, dir=self.path.parent
            )
        except OSError as exc:  # folder not writable, disk full, read-only file system
            raise OutputError(f"cannot write {self.shown} in folder {self.path.parent}: {exc}") from None
        os.close(fd)
        self.temp_path: Path | None = Path(tmp)

    def commit(self) -> Path:
        """Move the finished temp file to ``path`` (keeping an existing file's permissions); idempotent."""
        if self.temp_path is not None:
            try:
                check_destination(self.path)  # it may have changed while the output was being made
                mode = self.path.stat().st_mode & 0o7777 if self.path.exists() else 0o644
                os.chmod(self.temp_path, mode)  # mkstemp makes it private; the result is an ordinary file
                os.replace(self.temp_path, self.path)
            except OSError as exc:
                self.discard()
                raise OutputError(f"cannot write {self.shown}: {exc}") from None
            except OutputError:
                self.discard()
                raise
            self.temp_path = None
        return self.path

    def discard(self) -> None:
        if self.temp_path is not None:
            with contextlib.suppress(OSError):
                self.temp_path.unlink()
            self.temp_path = None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_temps(path: Path, suffix: str = ".tmp") -> int:
    """Delete temp files that a killed writer of ``path`` left behind; the number removed."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[A-Za-z0-9_]+{re.escape(suffix)}")
    removed = 0
    try:
        candidates = list(path.parent.glob(f".{glob.escape(path.name)}.*{glob.escape(suffix)}"))
    except OSError:
        return 0
    for tmp in candidates:
        match = pattern.fullmatch(tmp.name)
        if match and int(match.group(1)) != os.getpid() and not _process_alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed += 1
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = ".tmp", overwrite: bool = True) -> Iterator[Path]:
    """A temp path to write ``path``'s content to; it replaces ``path`` when the block ends normally. An
    OSError while writing (a full or read-only disk) becomes OutputError naming ``path``; either way the
    temp file goes and ``path`` stays as it was."""
    pending = PendingFile(path, suffix, overwrite)
    if pending.temp_path is None:  # pragma: no cover - set by the constructor
        raise OutputError(f"cannot write {path}")
    try:
        try:
            yield pending.temp_path
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc}") from None
        pending.commit()
    finally:
        pending.discard()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], overwrite: bool = True) -> Iterator[IO[bytes]]:
    """A file object on a temp file beside ``path``; flushed to disk and renamed over ``path`` on success,
    removed on error (Ctrl-C included)."""
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "wb") as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, then os.replace)."""
    with atomic_open(path, overwrite) as f:
        f.write(data)
    return Path(path)


def write_framed(
    path: str | Path, magic: bytes, header: Mapping[str, Any], payload: bytes | memoryview
) -> None:
    """Write ``magic``, the header's length, the JSON header and ``payload`` to ``path`` atomically."""
    encoded = json.dumps(header, sort_keys=True).encode()
    with atomic_open(path) as f:
        f.write(magic + _LENGTH.pack(len(encoded)) + encoded)
        f.write(payload)


def read_framed_header(path: str | Path, magic: bytes, what: str, hint: str = "") -> tuple[Any, int, int]:
    """The decoded JSON header of a file written by :func:`write_framed`, the payload offset and size.

    ``hint`` is added to the error for a file that does not start with ``magic``.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{what} {path} does not exist")
    size = path.stat().st_size
    with open(path, "rb") as f:
        prefix = f.read(len(magic) + _LENGTH.size)
        if len(prefix) < len(magic) + _LENGTH.size or not prefix.startswith(magic):
            raise ModelLoadError(f"{path} is not an edgedepth {what} (no edgedepth header). {hint}".rstrip())
        (length,) = _LENGTH.unpack(prefix[len(magic) :])
        if length > MAX_HEADER_BYTES or len(prefix) + length > size:
            raise ModelLoadError(
                f"{path}: the header claims {length} bytes; the file is truncated or corrupt"
            )
        try:
            data = json.loads(f.read(length).decode())
        except (
            UnicodeDecodeError,
            ValueError,
            RecursionError,
        ) as exc:  # ValueError: JSONDecodeError, huge ints
            raise ModelLoadError(f"{path}: the header is not valid JSON: {str(exc)[:200]}") from None
    offset = len(prefix) + length
    return data, offset, size - offset


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, read in 1 MiB chunks (provenance: which model or data an artifact came from)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
