"""The ``edgedepth`` command line: thin argument parsing over the Python API.

edgedepth demo                                   # embedded model on the embedded clip -> demo_depth.mp4
edgedepth predict photos/*.jpg -o out/           # colourised PNG, 16-bit PNG + scale, .npy
edgedepth stream 0 --show                        # camera 0; also files, folders, rtsp://, GStreamer
edgedepth serve 0                                # a live web viewer
edgedepth verify model.engine                    # golden-output check against the FP32 model
edgedepth info [MODEL]                           # spec, inputs/outputs, backends and why

The live commands (stream, demo, serve) are in ``cli_live.py``, the options they share in ``cli_options.py``.

Sub-commands that live outside the runtime register through the ``edgedepth.commands`` entry-point group
(``build-engine`` from the quantization tree, ``benchmark`` from the benchmarks), so the runtime never
imports them by name.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import __version__
from .cli_live import add_live_commands
from .cli_options import (
    add_model_options,
    add_runtime_options,
    add_view_options,
    estimator_from,
    positive_int,
)
from .clouds import add_cloud_options, check_cloud_options, describe_fit, write_cloud
from .errors import EdgeDepthError, InputError, OutputError

COMMANDS_GROUP = "edgedepth.commands"
OUTPUT_FORMATS = ("color", "png16", "npy")

OUTPUT_SUFFIXES = {
    "color": "_depth.png",
    "png16": "_inverse_depth16.png",
    "npy": "_inverse_depth.npy",
    "ply": "_cloud.ply",
}


def output_stems(images: list[Path], out: Path) -> list[Path]:
    """Where each image's results go: its path relative to the inputs' common folder, under ``out``, so
    that ``a/rgb.png`` and ``b/rgb.png`` never overwrite each other. Same-named files in one folder
    (``x.png``, ``x.jpg``) keep their suffix in the name; a file given twice is an error."""
    resolved = [p.resolve() for p in images]
    twice = sorted({str(p) for p in resolved if resolved.count(p) > 1})
    if twice:
        raise InputError(f"predict: {twice[0]} is given more than once")
    root = Path(os.path.commonpath([p.parent for p in resolved]))
    stems = [p.parent.relative_to(root) / p.stem for p in resolved]
    return [
        out / (stem.with_name(f"{stem.name}_{p.suffix.lstrip('.')}") if stems.count(stem) > 1 else stem)
        for stem, p in zip(stems, resolved, strict=True)
    ]


def expand_images(args: list[str]) -> list[Path]:
    """Image files from what the user named: files, folders (their images, not recursive) and glob patterns
    (quoted, or left unexpanded by the shell; ``**`` recurses), in the order given, each folder sorted."""
    from .capture.kinds import GLOB_CHARS, list_images

    images: list[Path] = []
    for arg in args:
        if os.path.isdir(arg) or (any(c in arg for c in GLOB_CHARS) and not os.path.exists(arg)):
            try:
                images += list_images(arg)
            except EdgeDepthError as exc:
                raise InputError(f"predict: {exc}") from None
        else:
            images.append(Path(arg))
    return images


def cmd_predict(args: argparse.Namespace) -> int:
    import cv2
    from tqdm import tqdm

    from .fileio import atomic_write_bytes
    from .imageio import check_image_file, save_npy, save_png16

    # Everything that can be checked is checked before the model loads and before anything is written:
    # the inputs (each exists and its header is an image of an accepted size), the option files, the outputs.
    images = expand_images(args.images)
    for path in images:
        check_image_file(path)
    formats = [f for f in OUTPUT_FORMATS if f in set(args.format)] + (["ply"] if args.ply else [])
    cloud_settings = check_cloud_options(args, args.ply)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise OutputError(f"predict: -o {out} is a file; name a folder")
    targets = [
        [stem.with_name(stem.name + OUTPUT_SUFFIXES[f]) for f in formats]
        for stem in output_stems(images, out)
    ]
    existing = [t for row in targets for t in row if t.exists()]
    if existing and not args.overwrite:
        raise InputError(
            f"predict: {existing[0]} exists ({len(existing)} output(s) would be replaced); pass --overwrite"
        )
    written: list[Path] = []
    with estimator_from(args) as est:
        bar = tqdm(
            list(zip(images, targets, strict=True)),
            desc="predict",
            unit="img",
            disable=True if len(images) < 2 else None,  # None: no bar when the output is a log
        )
        for path, row in bar:
            result = est.predict(path)
            row[0].parent.mkdir(parents=True, exist_ok=True)
            for fmt, target in zip(formats, row, strict=True):
                if fmt == "color":
                    ok, buf = cv2.imencode(".png", result.colorize(args.cmap, args.invert))
                    if not ok:
                        raise InputError(f"could not encode the depth image of {path} as PNG")
                    atomic_write_bytes(target, buf.tobytes())
                    written.append(target)
                elif fmt == "png16":
                    save_png16(target, result.inverse_depth)
                    written += [target, target.with_suffix(".json")]
                elif fmt == "npy":
                    written.append(save_npy(target, result.inverse_depth))
                elif cloud_settings is not None:
                    fit = write_cloud(cloud_settings, result, cv2.imread(str(path), cv2.IMREAD_COLOR), target)
                    written += [target, target.with_suffix(".json")]
                    bar.write(f"{path}: {describe_fit(fit)}")
    print(f"wrote {len(written)} file(s) for {len(images)} image(s) under {out}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .fileio import atomic_write_bytes, check_destination
    from .verify import verify

    if args.json:  # before the work: the report must have somewhere to go, and never over the model
        check_destination(args.json, args.overwrite)
        if Path(args.json).exists() and Path(args.json).resolve() == Path(args.model_file).resolve():
            raise OutputError(f"--json {args.json} is the model being verified; name another file")
    report = verify(
        args.model_file,
        reference=args.reference,
        frames=args.frames,
        max_abs_rel=args.max_abs_rel,
        max_frames=args.max_frames,
        backend=args.backend,
        long_side=args.long_side,
    )
    print(report.table())
    if args.json:
        atomic_write_bytes(args.json, json.dumps(report.to_dict(), indent=1).encode(), args.overwrite)
    return 0 if report.passed else 1


def cmd_info(args: argparse.Namespace) -> int:
    from .backends import available_backends

    print(f"edgedepth {__version__}")
    print("backends:")
    for status in available_backends():
        print(f"  {status.kind:<12} {'yes' if status.available else 'no ':<4} {status.reason}")
    if args.model and Path(args.model).suffix.lower() == ".engine":  # readable without TensorRT
        from .engine_file import (
            read_engine_header,
        )

        header, _ = read_engine_header(args.model)
        cc = ".".join(map(str, header.compute_capability))
        print(f"engine {args.model}: {header.spec.precision.value}, built with TensorRT {header.tensorrt_version} "
              f"on {header.device_name} (compute capability {cc}), profile {header.profile.describe()}, "
              f"from {header.onnx_name} (sha256 {header.onnx_sha256[:16]}...), flags {header.flags}")  # fmt: skip
    with estimator_from(args) as est:
        spec = est.spec
        print(f"model: {est.model_path}")
        print(f"  backend chosen: {est.backend_name}")
        for reason in est.backend_reasons:
            print(f"    {reason}")
        print(f"  name {spec.name} (version {spec.version}), precision {spec.precision}")
        print(f"  input '{spec.input_name}': {spec.input_size[0]}x{spec.input_size[1]}, "
              f"{'dynamic (multiples of ' + str(spec.size_multiple) + ')' if spec.dynamic_shape else 'fixed'}, "
              f"{spec.resize_mode} resize, {spec.interpolation}, {spec.color_order}, mean {spec.mean}, std {spec.std}")  # fmt: skip
        print(f"  outputs: '{spec.output_name}' ({spec.output_kind}), '{spec.confidence_name}'")
        for key, value in sorted(spec.provenance.items()):
            print(f"  provenance.{key}: {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgedepth", description="Fast monocular depth estimation.")
    parser.add_argument("--version", action="version", version=f"edgedepth {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="depth for image files")
    p.add_argument("images", nargs="+")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="output folder; each image's results keep its path relative to the inputs' common folder "
        "(a/rgb.png -> OUT/a/rgb_depth.png), so equal names never collide",
    )
    p.add_argument("--format", nargs="+", default=list(OUTPUT_FORMATS), choices=OUTPUT_FORMATS)
    p.add_argument("--overwrite", action="store_true", help="replace results that exist already")
    p.add_argument("--ply", action="store_true", help="also write a metric point cloud (NAME_cloud.ply)")
    add_cloud_options(p)
    add_model_options(p)
    add_view_options(p)
    p.set_defaults(func=cmd_predict)

    add_live_commands(sub)

    from .verify import DEFAULT_FRAMES, DEFAULT_MAX_ABS_REL, INT8_MAX_ABS_REL

    p = sub.add_parser(
        "verify",
        help="golden-output check: a model (engine, INT8, any backend) against its FP32 reference; "
        "exits 1 when a frame disagrees",
    )
    p.add_argument("model_file", metavar="MODEL", help=".onnx or .engine to check")
    p.add_argument("--reference", help="the FP32 ONNX it was built from (default: the embedded model)")
    p.add_argument("--frames", help="video file or image folder (default: the embedded clip)")
    p.add_argument("--max-frames", type=positive_int, default=DEFAULT_FRAMES, help="frames spread over it")
    p.add_argument(
        "--max-abs-rel",
        type=float,
        help="a frame fails above this AbsRel against the reference "
        f"(default {DEFAULT_MAX_ABS_REL}; {INT8_MAX_ABS_REL} for an INT8 model)",
    )
    p.add_argument("--json", help="also write the report here")
    p.add_argument("--overwrite", action="store_true", help="replace the --json file if it exists")
    add_runtime_options(p, precision=False)  # it checks the file given; no embedded variant to pick
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("info", help="model spec, inputs, outputs and available backends")
    p.add_argument("model", nargs="?", help="model file (default: the embedded model)")
    add_runtime_options(p)
    p.set_defaults(func=cmd_info)
    _add_plugin_commands(sub)
    return parser


def _add_plugin_commands(sub: argparse._SubParsersAction) -> None:
    from importlib.metadata import entry_points

    for entry in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        try:
            register = entry.load()
        except Exception as exc:  # its optional dependencies are missing: say so when it is used
            p = sub.add_parser(entry.name, help=f"(unavailable: {exc})")
            p.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
            p.set_defaults(func=_unavailable(entry.name, exc))
            continue
        register(sub)


def _unavailable(name: str, exc: Exception):
    def run(args: argparse.Namespace) -> int:
        raise InputError(f"the {name!r} command cannot load: {exc}; pip install edgedepth[all]")

    return run


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except EdgeDepthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
