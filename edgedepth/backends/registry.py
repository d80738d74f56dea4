"""The registry: every backend's description, their status here, and ``open_backend`` (explicit or auto).

Optional libraries are probed by import, never installed: a missing one is reported with the install
command from the backend's description.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from ..artifact import ModelSpec, parse_enum
from ..errors import BackendUnavailableError, InputError, ModelLoadError, choices
from . import onnxruntime, openvino, tensorrt
from .base import Backend, BackendDescription, BackendKind, BackendOptions, BackendStatus

BACKENDS: dict[BackendKind, BackendDescription] = {
    d.kind: d for d in (onnxruntime.DESCRIPTION, openvino.DESCRIPTION, tensorrt.DESCRIPTION)
}

# The order auto tries backends in, the first that serves the file and device and works here winning.
# TensorRT only opens .engine files. For INT8, OpenVINO runs the QDQ model faster than ONNX Runtime, which
# runs it slower than its own FP32: `python -m benchmarks` (efficientdepth-s, 256x256, batch 1, 2-core AVX2
# EPYC, p50 of two runs) int8 15.0-22.8 ms openvino vs 27.5-32.2 ms onnxruntime (fp32: 17.3-23.0 /
# 17.6-19.1 ms); FP32 is close, so OpenVINO leads for every precision and ONNX Runtime is the fallback.
AUTO_ORDER = (BackendKind.TENSORRT, BackendKind.OPENVINO, BackendKind.ONNXRUNTIME)


def parse_backend_kind(kind: BackendKind | str) -> BackendKind:
    """A BackendKind from a member or string; an unknown name raises InputError listing the choices."""
    try:
        return parse_enum(BackendKind, kind, "backend")
    except ValueError as exc:
        raise InputError(str(exc)) from None


def is_installed(lib: str) -> bool:
    """Whether ``lib`` is a real package: a folder of type stubs alone (e.g. tensorrt-stubs) is a namespace
    package without an origin, and does not count."""
    spec = importlib.util.find_spec(lib)
    return spec is not None and spec.origin is not None


def backend_status(kind: BackendKind | str) -> BackendStatus:
    """Probe one backend: its libraries (find_spec, then import), then the backend's own probe."""
    kind = parse_backend_kind(kind)
    if kind is BackendKind.AUTO:
        raise InputError(f"backend_status needs a concrete backend; choose one of {choices(BACKENDS)}")
    desc = BACKENDS[kind]
    opens = f" It opens {', '.join(desc.suffixes)} files." if kind is BackendKind.TENSORRT else ""
    for lib in desc.libraries:
        if not is_installed(lib):
            return BackendStatus(kind, False, f"{lib} is not installed ({desc.install}).{opens}")
        try:
            importlib.import_module(lib)
        except Exception as exc:  # a broken install (missing shared library, ABI mismatch, ...)
            return BackendStatus(
                kind, False, f"{lib} is installed but fails to import: {exc} ({desc.install})"
            )
    available, reason = desc.probe()
    return BackendStatus(kind, available, reason)


def available_backends() -> list[BackendStatus]:
    """Status of every registered backend, for ``edgedepth info``."""
    return [backend_status(kind) for kind in BACKENDS]


def _skip_reason(desc: BackendDescription, path: Path, options: BackendOptions) -> str | None:
    """Why auto must pass over a backend for this file and device whatever is installed, or None."""
    if path.suffix.lower() not in desc.suffixes:
        missing = [lib for lib in desc.libraries if not is_installed(lib)]
        note = f" (also: {', '.join(missing)} not installed; {desc.install})" if missing else ""
        return f"skipped: it opens {', '.join(desc.suffixes)} files and {path.name} is not one{note}"
    if not desc.serves(options.device):
        return f"skipped: it does not serve device={options.device!r} (it serves {', '.join(desc.devices)})"
    return None


def open_backend(
    model_path: str | Path,
    spec: ModelSpec,
    kind: BackendKind | str = BackendKind.AUTO,
    options: BackendOptions | None = None,
) -> tuple[Backend, list[str]]:
    """Open ``model_path`` on ``kind``, or for "auto" on the first backend in ``AUTO_ORDER`` that can.

    Returns the backend and one reason per backend considered, e.g.
    ``["tensorrt: skipped: ...", "openvino: chosen: ...", "onnxruntime: not tried: ..."]``.
    """
    kind, options, path = parse_backend_kind(kind), options or BackendOptions(), Path(model_path)
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist")
    if kind is not BackendKind.AUTO:
        desc = BACKENDS[kind]
        status = backend_status(kind)
        if not status.available:
            raise BackendUnavailableError(f"backend {kind.value!r} cannot be used: {status.reason}")
        if path.suffix.lower() not in desc.suffixes:
            raise InputError(
                f"backend {kind.value!r} cannot open {path}: it opens {', '.join(desc.suffixes)} files"
            )
        desc.device(options)  # a device it does not serve is refused before anything loads
        return desc.load(path, spec, options), [f"{kind}: chosen: requested explicitly ({status.reason})"]

    reasons: list[str] = []
    backend: Backend | None = None
    failure: Exception | None = None
    for candidate in AUTO_ORDER:
        desc = BACKENDS[candidate]
        if backend is not None:
            reasons.append(f"{candidate}: not tried: {backend.kind} comes first in auto's order")
            continue
        skip = _skip_reason(desc, path, options)
        if skip is not None:
            reasons.append(f"{candidate}: {skip}")
            continue
        status = backend_status(candidate)
        if not status.available:
            reasons.append(f"{candidate}: unavailable: {status.reason}")
            continue
        try:
            backend = desc.load(path, spec, options)
            reasons.append(f"{candidate}: chosen: available ({status.reason}), first in auto's order")
        except (BackendUnavailableError, ModelLoadError) as exc:  # the next backend may still manage
            failure = failure if isinstance(failure, ModelLoadError) else exc
            reasons.append(f"{candidate}: failed: {exc}")
    if backend is None:
        error = ModelLoadError if isinstance(failure, ModelLoadError) else BackendUnavailableError
        raise error(f"no backend could open {path}: " + "; ".join(reasons)) from failure
    return backend, reasons
