"""ModelSpec: metadata round trip and errors that name the key."""

from __future__ import annotations

import pytest

from edgedepth.artifact import ColorOrder, ModelSpec, Precision, ResizeMode
from edgedepth.errors import ModelLoadError


def test_round_trip() -> None:
    spec = ModelSpec(
        name="x",
        input_size=(224, 320),
        precision=Precision.INT8,
        color_order=ColorOrder.BGR,
        provenance={"a": "b"},
    )
    assert ModelSpec.from_metadata(spec.to_metadata()) == spec


def test_missing_spec_is_a_clear_error() -> None:
    with pytest.raises(ModelLoadError, match=r"edgedepth\.spec_format"):
        ModelSpec.from_metadata({"other": "1"}, source="m.onnx")


def test_missing_name_names_the_key() -> None:
    meta = ModelSpec(name="x").to_metadata()
    del meta["edgedepth.name"]
    with pytest.raises(ModelLoadError, match=r"edgedepth\.name"):
        ModelSpec.from_metadata(meta)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("edgedepth.resize_mode", '"squash"', "letterbox"),
        ("edgedepth.input_size", '"big"', "edgedepth.input_size"),
        ("edgedepth.mean", "not json", "edgedepth.mean"),
        ("edgedepth.input_size", "[250, 250]", "multiples"),
    ],
)
def test_invalid_values_name_the_key(key: str, value: str, match: str) -> None:
    meta = ModelSpec(name="x").to_metadata()
    meta[key] = value
    with pytest.raises(ModelLoadError, match=match):
        ModelSpec.from_metadata(meta)


def test_third_party_spec() -> None:
    """A Depth Anything export: sides multiple of 14, ImageNet mean/std, stretch resize."""
    spec = ModelSpec(
        name="depth-anything-v2-small",
        input_size=(518, 518),
        size_multiple=14,
        resize_mode=ResizeMode.STRETCH,
    )
    assert spec.input_size == (518, 518)
    with pytest.raises(ValueError, match="multiples"):
        ModelSpec(name="bad", input_size=(520, 518), size_multiple=14)
