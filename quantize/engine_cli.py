"""``edgedepth build-engine`` (also ``edgedepth-quantize build-engine``): the TensorRT engine builder's CLI.

Kept apart from the NNCF commands so that the ``edgedepth`` command can offer it on a Jetson that has
TensorRT and pycuda but neither onnx nor NNCF.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgedepth.artifact import Precision
from edgedepth.engine_file import HARDWARE_COMPATIBILITY
from edgedepth.errors import InputError

from .calibration import DEFAULT_FRAMES


def add_build_engine_parser(sub: argparse._SubParsersAction) -> None:
    """The ``build-engine`` sub-command; also registered into the ``edgedepth`` command."""
    from .engine import JETSON_MEMORY_POOL_MIB

    p = sub.add_parser(
        "build-engine",
        help="TensorRT engine (FP32/FP16/INT8) for the GPU this runs on",
        description="Build a TensorRT engine on the device that will run it (engines are not portable).",
    )
    p.add_argument("model", help="ONNX file carrying its edgedepth ModelSpec (FP32, or the QDQ INT8 one)")
    p.add_argument("-o", "--output", help="engine file (default: MODEL stem + .PRECISION.engine)")
    p.add_argument("--precision", choices=[m.value for m in Precision], default="fp16")
    for name in ("min", "opt", "max"):
        p.add_argument(
            f"--{name}-shape", type=argument_type(_shape), help=f"profile {name}: NxHxW or HxW (batch 1)"
        )
    p.add_argument(
        "--memory-pool-mib",
        type=int,
        default=JETSON_MEMORY_POOL_MIB,
        help=f"builder workspace limit (default {JETSON_MEMORY_POOL_MIB}, suits 4-8 GB Jetsons)",
    )
    p.add_argument("--timing-cache", help="timing cache file (default: one per TensorRT version and GPU)")
    p.add_argument("--version-compatible", action="store_true", help="runs on later TensorRT of this major")
    p.add_argument("--hardware-compatibility", choices=HARDWARE_COMPATIBILITY, default="none")
    p.add_argument("--dla-core", type=int, help="build for this DLA core (Jetson Xavier/Orin; fp16 or int8)")
    p.add_argument(
        "--no-gpu-fallback", action="store_true", help="with --dla-core: fail on layers the DLA lacks"
    )
    g = p.add_argument_group("implicit INT8 (float ONNX + IInt8EntropyCalibrator2)")
    g.add_argument(
        "--calibration", action="append", default=[], help="calibration source, as for int8 --calib"
    )
    g.add_argument(
        "--calibration-cache", help="bound calibration cache (default: MODEL-HASH.calibration-cache)"
    )
    g.add_argument("--calibration-frames", type=int, default=DEFAULT_FRAMES)
    g.add_argument("--calibration-batch", type=int, default=8)
    p.set_defaults(func=cmd_build_engine)


def argument_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse ``type=`` that reports the parser's InputError as the usage error."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except InputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _shape(text: str) -> tuple[int, ...]:
    from .engine import parse_shape

    return parse_shape(text)


def cmd_build_engine(args: argparse.Namespace) -> int:
    from .engine import BuildFlags, CalibrationSettings, build_engine

    output = args.output or f"{Path(args.model).stem}.{args.precision}.engine"
    flags = BuildFlags(
        memory_pool_mib=args.memory_pool_mib,
        version_compatible=args.version_compatible,
        hardware_compatibility=args.hardware_compatibility,
        dla_core=args.dla_core,
        gpu_fallback=not args.no_gpu_fallback,
    )
    calibration = CalibrationSettings(
        sources=tuple(args.calibration),
        cache_path=Path(args.calibration_cache) if args.calibration_cache else None,
        frames=args.calibration_frames,
        batch_size=args.calibration_batch,
    )
    header = build_engine(
        args.model,
        output,
        args.precision,
        (args.min_shape, args.opt_shape, args.max_shape),
        flags,
        calibration,
        args.timing_cache,
    )
    print(
        f"wrote {output}: {header.spec.precision.value} ({header.flags.int8_mode or 'float'}), TensorRT "
        f"{header.tensorrt_version}, {header.device_name} (sm{header.compute_capability[0]}"
        f"{header.compute_capability[1]}), profile {header.profile.describe()}, {header.plan_size / 1e6:.1f} MB"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Entry point of the ``edgedepth.commands`` group: adds ``build-engine`` to the ``edgedepth`` command."""
    add_build_engine_parser(subparsers)
