"""The training tree's own errors (on top of the runtime's ``edgedepth.errors``)."""

from __future__ import annotations

from edgedepth.errors import EdgeDepthError


class RecipeError(EdgeDepthError, ValueError):
    """A training recipe has a missing, unknown or invalid key."""
