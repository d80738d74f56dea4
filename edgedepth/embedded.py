"""What ships inside the package: the default model (FP32 and INT8) and the demo clip."""

from __future__ import annotations

from pathlib import Path

from .artifact import Precision, parse_enum
from .errors import InputError, ModelLoadError
from .fileio import file_sha256

PACKAGE_DIR = Path(__file__).resolve().parent
MODELS_DIR = PACKAGE_DIR / "models"
DEFAULT_MODEL = "efficientdepth-s"
DEMO_CLIP = PACKAGE_DIR / "data" / "demo.mp4"  # see data/DEMO_CLIP.md for its source and licence


def default_model_path(precision: str | Precision = "fp32", verify: bool = True) -> Path:
    """Path of the embedded default model file for ``precision`` (fp32 or int8), checked against the
    sha256 recorded in ``models/SHA256SUMS`` (a corrupt embedded model is named, never run)."""
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
    if verify:
        verify_sha256(path, shipped_sha256().get(path.name, ""), "the embedded model")
    return path


def shipped_sha256() -> dict[str, str]:
    """File name -> sha256 of the shipped models, from ``models/SHA256SUMS`` (``sha256sum`` format)."""
    sums = MODELS_DIR / "SHA256SUMS"
    if not sums.is_file():
        raise ModelLoadError(f"{sums} is missing: this installation of edgedepth is incomplete")
    entries = (line.split() for line in sums.read_text().splitlines() if line.strip())
    return {name.lstrip("*"): digest for digest, name in entries}


def verify_sha256(path: Path, expected: str, what: str = "model") -> None:
    """Raise ModelLoadError unless the file's sha256 is ``expected``."""
    actual = file_sha256(path)
    if actual != expected.lower():
        raise ModelLoadError(
            f"{what} {path} is corrupt or not the expected file: sha256 {actual[:16]}..., expected "
            f"{expected[:16] or 'none recorded'}... (reinstall edgedepth, or check the file you passed)"
        )


def shipped_precisions() -> list[str]:
    """The precisions of the default model that ship in this installation (e.g. ['fp32', 'int8'])."""
    return [p.value for p in Precision if (MODELS_DIR / f"{DEFAULT_MODEL}-{p.value}.onnx").is_file()]
