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


def auto_precision(backend: str) -> tuple[Precision, str]:
    """``precision="auto"`` for the embedded model: INT8 where it is the faster file (OpenVINO, on a CPU with
    VNNI or AMX) and the shipped INT8 model passed its accuracy gate; FP32 otherwise. The choice and why."""
    import json

    from .backends import backend_status
    from .cpu import INT8_FLAGS, cpu_isa_flags

    fp32 = Precision.FP32
    if "int8" not in shipped_precisions():
        return fp32, "no INT8 model ships in this installation"
    if backend not in ("auto", "openvino"):
        return fp32, f"backend {backend}: INT8 is faster than FP32 only on OpenVINO"
    if not backend_status("openvino").available:
        return fp32, "OpenVINO is not installed (INT8 is faster than FP32 only on OpenVINO)"
    flags = [f for f in cpu_isa_flags() if f in INT8_FLAGS]
    if not flags:
        return fp32, f"the CPU has none of {', '.join(INT8_FLAGS)}: INT8 would not be faster"
    report_file = MODELS_DIR / f"{DEFAULT_MODEL}-int8.report.json"
    try:
        report = json.loads(report_file.read_text())
    except (OSError, ValueError):
        return fp32, f"{report_file.name} is missing or unreadable: the INT8 model's gate cannot be checked"
    if report.get("passed") is not True:
        return fp32, f"the INT8 model did not pass its accuracy gate ({report_file.name})"
    gate = f"AbsRel {report['candidate']['abs_rel']:.4f} against FP32 {report['reference']['abs_rel']:.4f}"
    return (
        Precision.INT8,
        f"OpenVINO on a CPU with {', '.join(flags)}; the INT8 model passed its gate ({gate})",
    )
