"""Inference backends: one module per library, each exporting its ``DESCRIPTION``; ``registry`` picks one.

Importing this package loads no inference library; ``open_backend`` imports the chosen one.
"""

from __future__ import annotations

from .base import Backend, BackendDescription, BackendKind, BackendOptions, BackendStatus
from .registry import (
    AUTO_ORDER,
    BACKENDS,
    available_backends,
    backend_status,
    open_backend,
    parse_backend_kind,
)

__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "Backend",
    "BackendDescription",
    "BackendKind",
    "BackendOptions",
    "BackendStatus",
    "available_backends",
    "backend_status",
    "open_backend",
    "parse_backend_kind",
]
