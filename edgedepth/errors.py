"""Typed exceptions raised at the SDK's boundary.

Every message names the file or option at fault and, where there is a fixed set, lists the valid choices.
"""

from __future__ import annotations


class EdgeDepthError(Exception):
    """Base class of every error edgedepth raises on purpose."""


class ModelLoadError(EdgeDepthError):
    """A model file is missing, corrupt, or carries missing/invalid metadata."""


class BackendUnavailableError(EdgeDepthError):
    """An inference backend was asked for but cannot run here (library or hardware missing)."""


class InputError(EdgeDepthError, ValueError):
    """An image, array or option passed by the caller cannot be used."""


class SourceError(EdgeDepthError):
    """A video source cannot be opened or has failed."""


class InferenceError(EdgeDepthError):
    """A loaded model failed to run, or returned NaN or inf; the message names the model file."""


class OutputError(EdgeDepthError):
    """An output cannot be written: a destination that is not a regular file, an existing file without
    ``overwrite``, a full or read-only disk. The destination is left as it was."""


class DataError(EdgeDepthError, ValueError):
    """A dataset folder or file (e.g. an RGB-D folder) is missing or malformed."""


def choices(values: object) -> str:
    """Render a collection of valid choices for an error message."""
    return ", ".join(repr(v) for v in values)  # type: ignore[attr-defined]
