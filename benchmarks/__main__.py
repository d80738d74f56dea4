"""FPS, latency percentiles and memory per backend, precision and input size, against a ViT-S/14 reference.

    python -m benchmarks                                  # the embedded model, fp32 and int8, every backend
    python -m benchmarks --sizes 256 --batches 1          # one cell per backend and precision
    python -m benchmarks --model my.onnx --backends openvino --threads 4
    python -m benchmarks soak --minutes 10                # RSS, threads and open files over a long stream
    python -m benchmarks flicker VIDEO ...                # video depth flicker with and without the stabiliser
    python -m benchmarks multistream VIDEO --copies 2 4   # several cameras: batched against round-robin
    python -m benchmarks serve VIDEO --clients 3          # the web viewer: inference FPS with and without clients
    python -m benchmarks ros2 VIDEO --frame-size 256x256  # the stream with and without publishing ROS 2 topics
    python -m benchmarks figures                          # the README demo frame from the embedded model
    python -m benchmarks --only stream --video ../shared/data/video/vtest.avi   # stream FPS vs model-only
    edgedepth benchmark ...                               # the same options

Writes results.json, results.md and latency.png (with matplotlib) into --out and prints the tables.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from pathlib import Path

from edgedepth.embedded import DEMO_CLIP
from edgedepth.errors import EdgeDepthError
from edgedepth.extras import MissingExtraError, require_extra

from .config import (
    DEFAULT_BATCHES,
    DEFAULT_SIZES,
    PARTS,
    BenchmarkConfig,
    check_sizes,
    counted_fields,
    model_entries,
    parse_backends,
    parse_batches,
    parse_list,
    parse_parts,
    parse_precisions,
    parse_sizes,
)
from .reference import VIT_S14, ViTConfig

SUBCOMMANDS = (
    "soak",
    "flicker",
    "multistream",
    "serve",
    "ros2",
    "figures",
)  # modules of this package with their own main()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options shared by ``python -m benchmarks`` and ``edgedepth benchmark``."""
    what = parser.add_argument_group("what to measure")
    what.add_argument(
        "--model", type=Path, action="append", help="an ONNX model (repeatable; default: the embedded one)"
    )
    what.add_argument(
        "--precisions",
        default="fp32,int8",
        help="the embedded model's precisions, without --model (default: fp32,int8)",
    )
    what.add_argument(
        "--engine", type=Path, action="append", help="a TensorRT engine of our model (repeatable)"
    )
    what.add_argument(
        "--reference-engine", type=Path, help="a TensorRT engine of the reference, for tensorrt rows"
    )
    what.add_argument(
        "--backends", help="comma-separated: onnxruntime, openvino, tensorrt (default: every available one)"
    )
    sizes = ",".join(str(h) for h, _ in DEFAULT_SIZES)
    what.add_argument("--sizes", default=sizes, help=f"input sizes, N or HxW (default: {sizes})")
    what.add_argument(
        "--batches", default=",".join(map(str, DEFAULT_BATCHES)), help="batch sizes (default: 1,4)"
    )
    what.add_argument(
        "--video", type=Path, default=DEMO_CLIP, help="video for the stream (default: the demo clip)"
    )
    what.add_argument("--skip", default="", help=f"comma-separated parts to leave out: {', '.join(PARTS)}")
    what.add_argument(
        "--only",
        help=f"comma-separated parts to run, all others left out (e.g. --only stream): {', '.join(PARTS)}",
    )
    how = parser.add_argument_group("how long")
    for f in counted_fields():
        default = f.default_factory() if callable(f.default_factory) else f.default
        how.add_argument(
            f"--{f.name.replace('_', '-')}", type=int, default=default, help=str(f.metadata["help"])
        )
    ref = parser.add_argument_group("reference and output")
    ref.add_argument(
        "--reference-dims",
        default=f"{VIT_S14.width},{VIT_S14.depth},{VIT_S14.heads},{VIT_S14.mlp}",
        help="WIDTH,DEPTH,HEADS,MLP of the reference ViT (default: ViT-S/14; others only for quick checks)",
    )
    ref.add_argument(
        "--cache-dir",
        type=Path,
        help="where the reference's ONNX file is kept (default: ~/.cache/edgedepth/benchmarks)",
    )
    ref.add_argument(
        "--out",
        type=Path,
        default=Path("benchmark-results"),
        help="output folder (default: benchmark-results)",
    )
    ref.add_argument("--no-plot", action="store_true", help="do not draw latency.png")
    ref.add_argument("--quiet", action="store_true", help="print only the final tables")


def config_from_args(args: argparse.Namespace) -> BenchmarkConfig:
    """Validate the options into a BenchmarkConfig; an invalid one raises InputError naming it."""
    from edgedepth.errors import InputError

    dims = parse_list(args.reference_dims, "--reference-dims")
    try:
        width, depth, heads, mlp = (int(v) for v in dims)
    except ValueError:
        raise InputError(
            f"--reference-dims={args.reference_dims!r}: give four integers WIDTH,DEPTH,HEADS,MLP"
        ) from None
    skip = parse_parts(args.skip, args.only)
    models = model_entries(args.model, parse_precisions(args.precisions), args.engine)
    sizes = parse_sizes(args.sizes)
    for entry in models:
        if entry.spec is not None and entry.spec.dynamic_shape:
            check_sizes(sizes, entry.spec.size_multiple, entry.label)
    return BenchmarkConfig(
        models=models,
        backends=parse_backends(args.backends, engines=bool(args.engine)),
        sizes=sizes,
        batches=parse_batches(args.batches),
        **{f.name: getattr(args, f.name) for f in counted_fields()},
        video=args.video,
        reference=ViTConfig(width=width, depth=depth, heads=heads, mlp=mlp),
        reference_engine=args.reference_engine,
        cache_dir=args.cache_dir,
        skip=skip,
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Run the benchmark the parsed options describe; 0 on success, 2 on a usage error."""
    try:  # FLOP counting and the reference read ONNX graphs
        require_extra("benchmarks", "the benchmarks")
    except MissingExtraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from .report import markdown, write_outputs
    from .suite import run_suite

    try:
        cfg = config_from_args(args)
        command = getattr(args, "command_line", None) or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
        log = (lambda message: None) if args.quiet else None
        document = run_suite(cfg, command, log) if log else run_suite(cfg, command)
        written = write_outputs(document, args.out, plot=not args.no_plot)
    except EdgeDepthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown(document))
    for kind, path in written.items():
        print(f"{kind}: {path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``benchmark`` sub-command to a CLI's subparsers (``edgedepth benchmark``)."""
    parser = subparsers.add_parser(
        "benchmark",
        help="FPS, latency and memory against a ViT-S/14 reference",
        description=__doc__.split("\n")[0],
    )
    add_arguments(parser)
    parser.set_defaults(func=run_from_args)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in SUBCOMMANDS:  # python -m benchmarks soak --minutes 10, flicker VIDEO ...
        module = importlib.import_module(f".{argv[0]}", __package__)
        return int(module.main(argv[1:]))
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    args.command_line = " ".join(["python -m benchmarks", shlex.join(argv)]).strip()
    return run_from_args(args)


if __name__ == "__main__":
    raise SystemExit(main())
