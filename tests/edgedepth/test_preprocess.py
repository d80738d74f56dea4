"""The CPU reference preprocessing (``edgedepth.preprocess``): sizes, the resize plan and its inverse, and the
one parser of sizes given as text."""

from __future__ import annotations

import numpy as np
import pytest

from edgedepth.artifact import ColorOrder, ModelSpec, ResizeMode
from edgedepth.errors import InputError
from edgedepth.preprocess import (
    model_input_hw,
    normalize_constants,
    parse_dims,
    parse_hw,
    plan_resize,
    preprocess,
    unpad_and_resize,
)

SPEC = ModelSpec(
    name="t", input_size=(256, 256), mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0), dynamic_shape=True
)


@pytest.mark.parametrize(
    ("text", "hw"), [("256", (256, 256)), ("192x256", (192, 256)), ("480X640", (480, 640))]
)
def test_parse_hw(text: str, hw: tuple[int, int]) -> None:
    assert parse_hw(text, "--size") == hw


@pytest.mark.parametrize("text", ["", "0", "-3", "axb", "1x2x3", "256x"])
def test_parse_hw_names_the_option(text: str) -> None:
    with pytest.raises(InputError, match="--size"):
        parse_hw(text, "--size")
    assert parse_dims("1x3x64x64", "shape", (4,)) == (1, 3, 64, 64)


def test_model_input_keeps_the_aspect_at_the_long_side() -> None:
    assert model_input_hw((480, 640), SPEC) == (256, 256)  # no long side given: the spec's size
    assert model_input_hw((480, 640), SPEC, long_side=256) == (192, 256)
    assert model_input_hw((480, 640), SPEC, long_side=320) == (256, 320)  # 240 rounds to a multiple of 32
    assert model_input_hw((640, 480), SPEC, long_side=256) == (256, 192)


@pytest.mark.parametrize("mode", [ResizeMode.LETTERBOX, ResizeMode.STRETCH])
def test_unpad_and_resize_inverts_the_plan(mode: ResizeMode) -> None:
    """A map that is constant per source row survives preprocess geometry and its inverse."""
    spec = SPEC.with_updates(resize_mode=mode, dynamic_shape=False)
    plan = plan_resize((90, 160), spec)
    assert plan.out_hw == (256, 256)
    rows = np.linspace(0, 1, plan.out_hw[0], dtype=np.float32)[:, None].repeat(plan.out_hw[1], 1)
    back = unpad_and_resize(rows, plan)
    assert back.shape == (90, 160)
    assert np.all(np.diff(back[:, 80]) >= -1e-6)  # top to bottom order kept


def test_normalisation_and_colour_order() -> None:
    bgr = np.zeros((32, 32, 3), np.uint8)
    bgr[..., 0], bgr[..., 2] = 255, 0  # pure blue
    x, _ = preprocess(bgr, SPEC.with_updates(dynamic_shape=False, input_size=(32, 32)))
    assert x.shape == (1, 3, 32, 32) and x.dtype == np.float32
    # RGB order: channel 2 holds blue, (1 - 0.5) / 1.0; channel 0 holds red, (0 - 0.5) / 0.25.
    assert np.allclose(x[0, 2], 0.5) and np.allclose(x[0, 0], -2.0)
    scale, offset = normalize_constants(SPEC.with_updates(color_order=ColorOrder.BGR))
    assert scale.shape == offset.shape == (3,)
