"""Inference backends: one module per library, chosen through a registry keyed by ``BackendKind``.

Importing this package loads no inference library; ``open_backend`` imports the chosen one.
"""

from __future__ import annotations

from .base import (
    AUTO_PREFERENCE,
    BACKENDS,
    Backend,
    BackendKind,
    BackendOptions,
    BackendStatus,
    available_backends,
    backend_status,
    open_backend,
    parse_backend_kind,
)

__all__ = [
    "AUTO_PREFERENCE",
    "BACKENDS",
    "Backend",
    "BackendKind",
    "BackendOptions",
    "BackendStatus",
    "available_backends",
    "backend_status",
    "open_backend",
    "parse_backend_kind",
]
