"""Preprocessing as pure functions driven by a ModelSpec: the CPU reference for every backend.

The CUDA kernel, the quantizer's calibration and training all match this code. Resizing is done in
float32 (bilinear, OpenCV's half-pixel-centre convention) so that a GPU kernel computing in float can
match it to 1e-3; padding is applied after normalisation with zeros (the normalised mean).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .artifact import ColorOrder, Interpolation, ModelSpec, ResizeMode
from .errors import InputError

CV2_INTERPOLATION = {
    Interpolation.LINEAR: cv2.INTER_LINEAR,
    Interpolation.AREA: cv2.INTER_AREA,
    Interpolation.CUBIC: cv2.INTER_CUBIC,
}


@dataclass(frozen=True)
class ResizePlan:
    """Where an image of ``src_hw`` lands inside the model input of ``out_hw``."""

    src_hw: tuple[int, int]
    scaled_hw: tuple[int, int]
    out_hw: tuple[int, int]
    pad_top: int
    pad_left: int


def parse_dims(
    text: str, option: str, lengths: tuple[int, ...] = (1, 2), example: str = "256x320"
) -> tuple[int, ...]:
    """Positive integers joined by ``x`` (``256x320``), as many as one of ``lengths``; the one parser of sizes
    and shapes given as text. A bad value raises InputError naming ``option``."""
    try:
        parts = tuple(int(p) for p in text.lower().split("x"))
    except ValueError:
        parts = ()
    if len(parts) not in lengths or min(parts) < 1:
        counts = " or ".join(str(n) for n in lengths)
        raise InputError(
            f"{option} {text!r} is not {counts} positive integers joined by 'x' (e.g. {example})"
        )
    return parts


def parse_hw(text: str, option: str) -> tuple[int, int]:
    """``256x320`` (height x width) or ``256`` (square)."""
    parts = parse_dims(text, option, (1, 2))
    return parts[0], parts[-1]


def round_to_multiple(value: float, multiple: int) -> int:
    """Nearest positive multiple of ``multiple``."""
    return max(multiple, round(value / multiple) * multiple)


def model_input_hw(src_hw: tuple[int, int], spec: ModelSpec, long_side: int | None = None) -> tuple[int, int]:
    """The input size for an image: the spec's fixed size, or (dynamic models) the image's aspect kept at
    ``long_side`` pixels on its longer side, each side a multiple of ``size_multiple``."""
    if long_side is None or not spec.dynamic_shape:
        return spec.input_size
    h, w = src_hw
    scale = long_side / max(h, w)
    return round_to_multiple(h * scale, spec.size_multiple), round_to_multiple(w * scale, spec.size_multiple)


def plan_resize(
    src_hw: tuple[int, int], spec: ModelSpec, out_hw: tuple[int, int] | None = None
) -> ResizePlan:
    """Compute the resize and padding that bring ``src_hw`` to ``out_hw`` (default: the spec's input size)."""
    h, w = src_hw
    oh, ow = out_hw or spec.input_size
    if spec.resize_mode is ResizeMode.STRETCH:
        return ResizePlan((h, w), (oh, ow), (oh, ow), 0, 0)
    scale = min(oh / h, ow / w)
    sh, sw = min(oh, max(1, round(h * scale))), min(ow, max(1, round(w * scale)))
    return ResizePlan((h, w), (sh, sw), (oh, ow), (oh - sh) // 2, (ow - sw) // 2)


def normalize_constants(spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (scale, offset) in the *input image's BGR order* so that ``x * scale + offset``
    equals ``(x / 255 - mean) / std`` in the model's colour order."""
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    scale = 1.0 / (255.0 * std)
    offset = -mean / std
    if spec.color_order is ColorOrder.RGB:  # model channel 0 is R = BGR channel 2
        scale, offset = scale[::-1], offset[::-1]
    return scale.astype(np.float32), offset.astype(np.float32)


def preprocess(
    bgr: np.ndarray, spec: ModelSpec, out_hw: tuple[int, int] | None = None
) -> tuple[np.ndarray, ResizePlan]:
    """BGR uint8 HxWx3 -> float32 1x3xHxW model input, plus the plan that postprocessing inverts."""
    if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
        raise InputError(f"preprocess expects an HxWx3 uint8 BGR image, got {bgr.dtype} {bgr.shape}")
    plan = plan_resize(bgr.shape[:2], spec, out_hw)
    resized = resize_float(bgr, plan.scaled_hw, spec.interpolation)
    scale, offset = normalize_constants(spec)
    order = [2, 1, 0] if spec.color_order is ColorOrder.RGB else [0, 1, 2]  # model channel c = BGR order[c]
    out = np.zeros((1, 3, *plan.out_hw), dtype=np.float32)
    sh, sw = plan.scaled_hw
    # Normalise straight into the padded CHW input (one multiply, one add): 2.5x faster than via HWC.
    dst = out[0, :, plan.pad_top : plan.pad_top + sh, plan.pad_left : plan.pad_left + sw]
    np.multiply(resized.transpose(2, 0, 1)[order], scale[order, None, None], out=dst)
    dst += offset[order, None, None]
    return out, plan


def resize_float(
    image: np.ndarray, hw: tuple[int, int], interpolation: Interpolation = Interpolation.LINEAR
) -> np.ndarray:
    """Resize in float32 (no uint8 rounding), as the GPU kernel does."""
    img = image.astype(np.float32, copy=False)
    if img.shape[:2] == tuple(hw):
        return img
    return cv2.resize(img, (hw[1], hw[0]), interpolation=CV2_INTERPOLATION[interpolation])


def unpad(map_hw: np.ndarray, plan: ResizePlan) -> np.ndarray:
    """A model-resolution map without the plan's padding (float32, contiguous)."""
    sh, sw = plan.scaled_hw
    crop = map_hw[plan.pad_top : plan.pad_top + sh, plan.pad_left : plan.pad_left + sw]
    return np.ascontiguousarray(crop, dtype=np.float32)


def resize_to_source(crop: np.ndarray, plan: ResizePlan, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """An unpadded map (``unpad``) resized back to the plan's source size."""
    h, w = plan.src_hw
    if crop.shape[:2] == (h, w):
        return crop
    return cv2.resize(crop, (w, h), interpolation=interpolation)


def unpad_and_resize(
    map_hw: np.ndarray, plan: ResizePlan, interpolation: int = cv2.INTER_LINEAR
) -> np.ndarray:
    """Invert a plan on a model-resolution map: crop the padding, resize back to the source size."""
    return resize_to_source(unpad(map_hw, plan), plan, interpolation)
