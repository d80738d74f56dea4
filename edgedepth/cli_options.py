"""Options the ``edgedepth`` sub-commands share, and the estimator they describe."""

from __future__ import annotations

import argparse
from typing import Any


def estimator_from(args: argparse.Namespace) -> Any:
    from .estimator import DepthEstimator

    return DepthEstimator(
        args.model,
        backend=args.backend,
        precision=getattr(args, "precision", "auto"),
        threads=args.threads,
        long_side=getattr(args, "long_side", None),
        verify_sha256=getattr(args, "verify_sha256", None),
    )


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1 (``--max-frames 0`` would silently process nothing)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer (omit the option for all)")
    return value


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="path to .onnx or .engine (default: the embedded efficientdepth-s)")
    p.add_argument("--verify-sha256", metavar="HEX", help="refuse a --model file whose sha256 differs")
    add_runtime_options(p)


def add_runtime_options(p: argparse.ArgumentParser, precision: bool = True) -> None:
    """--backend, --threads, --long-side and (for commands that may run the embedded model) --precision."""
    from .embedded import shipped_precisions

    p.add_argument("--backend", default="auto", help="auto, onnxruntime, openvino or tensorrt")
    if precision:
        p.add_argument(
            "--precision",
            default="auto",
            choices=["auto", *shipped_precisions()],
            help="which variant of the embedded model: auto (default) is INT8 on OpenVINO where the CPU has VNNI "
            "or AMX and the INT8 model passed its gate, FP32 otherwise; `edgedepth info` says which and why",
        )
    p.add_argument("--threads", type=int, help="inference threads (default: the backend's)")
    p.add_argument(
        "--long-side",
        type=positive_int,
        help="model input's long side in pixels, for models with a dynamic input (default: the spec's); "
        "larger gives finer depth and takes longer",
    )


def add_view_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cmap", default="turbo", help="turbo, inferno, magma, viridis or gray")
    p.add_argument("--invert", action="store_true", help="reverse the colour map")
