"""What ships inside the package: the default model (FP32 and INT8) and the demo clip."""

from __future__ import annotations

from pathlib import Path

from .artifact import Precision, parse_enum
from .errors import InputError, ModelLoadError

PACKAGE_DIR = Path(__file__).resolve().parent
MODELS_DIR = PACKAGE_DIR / "models"
DEFAULT_MODEL = "efficientdepth-s"
DEMO_CLIP = PACKAGE_DIR / "data" / "demo.mp4"  # see data/DEMO_CLIP.md for its source and licence


def default_model_path(precision: str | Precision = "fp32") -> Path:
    """Path of the embedded default model file for ``precision`` (fp32 or int8)."""
    try:
        prec = parse_enum(Precision, precision, "precision")
    except ValueError as exc:
        raise InputError(str(exc)) from None
    path = MODELS_DIR / f"{DEFAULT_MODEL}-{prec.value}.onnx"
    if not path.is_file():
        shipped = sorted(p.name for p in MODELS_DIR.glob("*.onnx"))
        raise ModelLoadError(
            f"no embedded {prec.value} model at {path}; shipped models: {', '.join(shipped) or 'none'}"
        )
    return path


def shipped_precisions() -> list[str]:
    """The precisions of the default model that ship in this installation (e.g. ['fp32', 'int8'])."""
    return [p.value for p in Precision if (MODELS_DIR / f"{DEFAULT_MODEL}-{p.value}.onnx").is_file()]
