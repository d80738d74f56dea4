"""ModelSpec: the one description of a model, written into the artifact at export and read back everywhere.

Preprocessing, calibration, the CUDA kernel and the benchmarks all take their input size, mean/std, colour
order and output kind from here; nothing else hard-codes them. The spec travels as ONNX ``metadata_props``
(one ``edgedepth.*`` key per field) and as the JSON header of TensorRT engine files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from enum import Enum, StrEnum
from typing import Any

from numpy import floating as np_floating
from numpy import integer as np_integer

from .errors import ModelLoadError, choices

SPEC_FORMAT = "1"
MAX_NAME_CHARS = 256
MAX_SIZE_MULTIPLE = 1024
MAX_INPUT_PIXELS = 4096 * 4096  # an input of 3 x 4096 x 4096 float32 is 201 MB
MAX_NORM_VALUE = 1000.0
MIN_STD = 1e-6
KEY_PREFIX = "edgedepth."


class ResizeMode(StrEnum):
    """How an image of any aspect is brought to the model's input size."""

    LETTERBOX = "letterbox"  # keep aspect, scale to fit, pad the rest (centred)
    STRETCH = "stretch"  # scale each axis independently


class ColorOrder(StrEnum):
    RGB = "rgb"
    BGR = "bgr"


class Interpolation(StrEnum):
    LINEAR = "linear"
    AREA = "area"
    CUBIC = "cubic"


class OutputKind(StrEnum):
    """What the model's main output means."""

    INVERSE_DEPTH = "inverse_depth"  # relative (affine-invariant) inverse depth: larger is nearer
    DEPTH = "depth"  # relative depth: larger is farther
    METRIC_DEPTH = "metric_depth"  # depth in metres


class Precision(StrEnum):
    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


def parse_enum(enum_type: type[Enum], value: object, option: str) -> Any:
    """Turn a string (or member) into an Enum member, naming the option and the valid choices on failure."""
    if isinstance(value, enum_type):
        return value
    try:
        return enum_type(str(value).lower())
    except ValueError:
        valid = [m.value for m in enum_type]
        raise ValueError(f"{option}={value!r} is not valid; choose one of {choices(valid)}") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np_integer) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np_integer | np_floating) and not isinstance(value, bool)


def _clip(text: str, limit: int = 200) -> str:
    """A value quoted in an error, shortened: a garbled field may be megabytes long."""
    text = repr(text) if not isinstance(text, str) else text
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


_ENUM_FIELDS: dict[str, type[Enum]] = {
    "resize_mode": ResizeMode,
    "interpolation": Interpolation,
    "color_order": ColorOrder,
    "output_kind": OutputKind,
    "precision": Precision,
}


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelSpec:
    """Everything the runtime needs to feed a model and read its outputs.

    ``input_size`` is (height, width). A model exported with dynamic spatial axes (``dynamic_shape``)
    accepts any size whose sides are multiples of ``size_multiple``; a fixed one accepts only ``input_size``.
    ``mean``/``std`` apply to pixels scaled to [0, 1], in the model's ``color_order``. Input size, mean and
    std have no defaults: a wrong guess there fails silently, so they are always stated (or come from
    :meth:`preset` for published third-party models).
    """

    name: str
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    size_multiple: int = 32
    dynamic_shape: bool = False
    resize_mode: ResizeMode = ResizeMode.LETTERBOX
    interpolation: Interpolation = Interpolation.LINEAR
    color_order: ColorOrder = ColorOrder.RGB
    output_kind: OutputKind = OutputKind.INVERSE_DEPTH
    precision: Precision = Precision.FP32
    input_name: str = "image"
    output_name: str = "inverse_depth"
    confidence_name: str | None = "confidence"
    version: str = "0"
    provenance: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def preset(cls, family: str, /, **changes: Any) -> ModelSpec:
        """The published preprocessing of a third-party model family, with ``changes`` applied (e.g. the
        export's ``name``, ``input_name`` / ``output_name``). Families: see ``PRESETS``."""
        if family not in PRESETS:
            raise ValueError(f"preset={family!r} is unknown; choose one of {choices(PRESETS)}")
        return replace(PRESETS[family], **changes)

    def preprocessing(self) -> dict[str, Any]:
        """The fields that decide what the model's input holds (JSON-ready): two specs with equal
        preprocessing feed a model identically."""
        return {k: _plain(getattr(self, k)) for k in PREPROCESSING_FIELDS}

    def __post_init__(self) -> None:
        """The spec validator: every spec, from metadata, JSON or code, passes here (ValueError otherwise)."""
        for name in ("name", "input_name", "output_name", "version"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or len(value) > MAX_NAME_CHARS:
                raise ValueError(
                    f"{name}={value!r} must be a non-empty string of at most {MAX_NAME_CHARS} characters"
                )
        if self.confidence_name is not None and (
            not isinstance(self.confidence_name, str) or not self.confidence_name
        ):
            raise ValueError(f"confidence_name={self.confidence_name!r} must be a non-empty string or None")
        for name, enum_type in _ENUM_FIELDS.items():
            object.__setattr__(self, name, parse_enum(enum_type, getattr(self, name), name))
        if not _is_int(self.size_multiple) or not 1 <= self.size_multiple <= MAX_SIZE_MULTIPLE:
            raise ValueError(
                f"size_multiple={self.size_multiple!r} must be an integer in 1..{MAX_SIZE_MULTIPLE}"
            )
        if not isinstance(self.dynamic_shape, bool):
            raise ValueError(f"dynamic_shape={self.dynamic_shape!r} must be true or false")
        size = tuple(self.input_size)
        if len(size) != 2 or not all(_is_int(v) for v in size):
            raise ValueError(f"input_size={self.input_size!r} must be two integers (height, width)")
        h, w = size
        if h < 1 or w < 1 or h % self.size_multiple or w % self.size_multiple:
            raise ValueError(
                f"input_size={self.input_size} must be positive multiples of size_multiple={self.size_multiple}"
            )
        if h * w > MAX_INPUT_PIXELS:
            raise ValueError(
                f"input_size={self.input_size} exceeds {MAX_INPUT_PIXELS} pixels, the input size limit"
            )
        for name in ("mean", "std"):
            values = tuple(getattr(self, name))
            if len(values) != 3 or not all(_is_number(v) and math.isfinite(v) for v in values):
                raise ValueError(f"{name}={getattr(self, name)!r} must be three finite numbers")
            object.__setattr__(self, name, tuple(float(v) for v in values))
        if not all(abs(v) <= MAX_NORM_VALUE for v in self.mean) or not all(
            MIN_STD <= v <= MAX_NORM_VALUE for v in self.std
        ):
            raise ValueError(
                f"mean={self.mean} and std={self.std} are out of range (|mean| <= {MAX_NORM_VALUE}, "
                f"{MIN_STD} <= std <= {MAX_NORM_VALUE}, for pixels in [0, 1])"
            )
        object.__setattr__(self, "input_size", (int(h), int(w)))

    def with_updates(self, **changes: Any) -> ModelSpec:
        """A copy with some fields changed (e.g. precision after quantization)."""
        return replace(self, **changes)

    def to_metadata(self) -> dict[str, str]:
        """Flatten to ``edgedepth.*`` string pairs for ONNX ``metadata_props`` or an engine header."""
        out = {KEY_PREFIX + "spec_format": SPEC_FORMAT}
        for key, value in asdict(self).items():
            if isinstance(value, Enum):
                value = value.value
            out[KEY_PREFIX + key] = json.dumps(value if not isinstance(value, tuple) else list(value))
        return out

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], source: str = "model") -> ModelSpec:
        """Rebuild a spec from ``edgedepth.*`` pairs; a missing or invalid key raises ModelLoadError naming it."""
        fmt = metadata.get(KEY_PREFIX + "spec_format")
        if fmt is None:
            raise ModelLoadError(
                f"{source}: metadata key {KEY_PREFIX}spec_format is missing, so this is not an edgedepth "
                "artifact. Pass spec=ModelSpec(...) explicitly to load a third-party model."
            )
        if fmt != SPEC_FORMAT:
            raise ModelLoadError(
                f"{source}: {KEY_PREFIX}spec_format={fmt!r}; this edgedepth reads {SPEC_FORMAT!r}"
            )
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            key = KEY_PREFIX + f.name
            if key not in metadata:
                if f.name in REQUIRED_FIELDS:
                    raise ModelLoadError(f"{source}: metadata key {key} is missing")
                continue  # older or partial specs fall back to the field's default
            try:
                kwargs[f.name] = _decode_field(f.name, json.loads(metadata[key]))
            except (ValueError, TypeError, OverflowError, RecursionError) as exc:
                raise ModelLoadError(
                    f"{source}: metadata key {key}={_clip(metadata[key])} is invalid: {_clip(str(exc))}"
                ) from None
        try:
            return cls(**kwargs)
        except (ValueError, TypeError, OverflowError) as exc:
            raise ModelLoadError(f"{source}: metadata describes an invalid spec: {_clip(str(exc))}") from None


PREPROCESSING_FIELDS = (
    "resize_mode",
    "interpolation",
    "mean",
    "std",
    "color_order",
    "size_multiple",
    "input_name",
)


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    return list(value) if isinstance(value, tuple) else value


# Depth Anything V2 (and Distill Any Depth, which shares its network): the image's short side resized to
# 518 (a multiple of 14) with bicubic interpolation, ImageNet mean/std, RGB; relative inverse depth out.
# MiDaS v2.1 small: 256, a multiple of 32, bicubic, ImageNet mean/std. Exports name their tensors
# differently: pass input_name / output_name to ``ModelSpec.preset`` when yours differ.
_DAV2 = {
    "input_size": (518, 518),
    "mean": IMAGENET_MEAN,
    "std": IMAGENET_STD,
    "size_multiple": 14,
    "dynamic_shape": True,
    "interpolation": Interpolation.CUBIC,
    "input_name": "image",
    "output_name": "depth",
    "confidence_name": None,
}
PRESETS: dict[str, ModelSpec] = {
    "depth-anything-v2": ModelSpec(name="depth-anything-v2", **_DAV2),  # type: ignore[arg-type]
    "distill-any-depth": ModelSpec(name="distill-any-depth", **_DAV2),  # type: ignore[arg-type]
    "midas-small": ModelSpec(
        name="midas-small",
        input_size=(256, 256),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        dynamic_shape=True,
        interpolation=Interpolation.CUBIC,
        output_name="depth",
        confidence_name=None,
    ),
}


REQUIRED_FIELDS = ("name", "input_size", "mean", "std")


def _decode_field(name: str, value: Any) -> Any:
    if name in _ENUM_FIELDS:
        return parse_enum(_ENUM_FIELDS[name], value, name)
    if name in {"input_size", "mean", "std"}:
        kind = _is_int if name == "input_size" else _is_number
        if not isinstance(value, list) or not all(kind(v) for v in value):
            what = "integers" if name == "input_size" else "numbers"
            raise TypeError(f"expected a list of {what}, got {_clip(repr(value))}")
        return tuple(value)
    if name == "provenance":
        if not isinstance(value, dict):
            raise TypeError("expected an object")
        return {str(k): str(v) for k, v in value.items()}
    if name == "size_multiple":
        if not _is_int(value):
            raise TypeError(f"expected an integer, got {_clip(repr(value))}")
        return value
    if name == "dynamic_shape":
        if not isinstance(value, bool):
            raise TypeError("expected true or false")
        return value
    if name == "confidence_name":
        return None if value is None else str(value)
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {_clip(repr(value))}")
    return value


def __getattr__(name: str) -> Any:
    """The file readers moved to ``edgedepth.model_file`` and ``file_sha256`` to ``edgedepth.fileio``;
    the old names keep working for one release, with a DeprecationWarning."""
    moved = {"read_spec": "model_file", "read_onnx_spec": "model_file", "read_onnx_metadata": "model_file"}
    moved["file_sha256"] = "fileio"
    if name not in moved:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    import warnings

    target = f"edgedepth.{moved[name]}"
    warnings.warn(f"edgedepth.artifact.{name} moved to {target}.{name}", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(target), name)  # by name: the shim adds no import edge
