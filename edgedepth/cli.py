"""The ``edgedepth`` command line: thin argument parsing over the Python API.

edgedepth demo                                   # embedded model on the embedded clip -> demo_depth.mp4
edgedepth predict photos/*.jpg -o out/           # colourised PNG, 16-bit PNG + scale, .npy
edgedepth stream 0 --show                        # camera 0; also files, folders, rtsp://, GStreamer
edgedepth info [MODEL]                           # spec, inputs/outputs, backends and why

Sub-commands that live outside the runtime register through the ``edgedepth.commands`` entry-point group
(``build-engine`` from the quantization tree, ``benchmark`` from the benchmarks), so the runtime never
imports them by name.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from . import __version__
from .clouds import add_cloud_options, check_cloud_options, write_cloud
from .embedded import DEMO_CLIP
from .errors import EdgeDepthError, InputError

COMMANDS_GROUP = "edgedepth.commands"
OUTPUT_FORMATS = ("color", "png16", "npy")


def _estimator(args: argparse.Namespace):
    from .estimator import DepthEstimator

    return DepthEstimator(
        args.model,
        backend=args.backend,
        precision=args.precision,
        threads=args.threads,
        long_side=getattr(args, "long_side", None),
        verify_sha256=getattr(args, "verify_sha256", None),
    )


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


def cmd_predict(args: argparse.Namespace) -> int:
    import cv2
    from tqdm import tqdm

    from .fileio import atomic_write_bytes
    from .imageio import save_npy, save_png16

    images = [Path(p) for p in args.images]
    formats = [f for f in OUTPUT_FORMATS if f in set(args.format)] + (["ply"] if args.ply else [])
    check_cloud_options(args, args.ply)
    out = Path(args.output)
    targets = [
        [stem.with_name(stem.name + OUTPUT_SUFFIXES[f]) for f in formats]
        for stem in output_stems(images, out)
    ]
    existing = [t for row in targets for t in row if t.exists()]
    if existing and not args.overwrite:
        raise InputError(
            f"predict: {existing[0]} exists ({len(existing)} output(s) would be replaced); pass --overwrite"
        )
    with _estimator(args) as est:
        for path, row in tqdm(
            list(zip(images, targets, strict=True)),
            desc="predict",
            unit="img",
            disable=True if len(images) < 2 else None,  # None: no bar when the output is a log
        ):
            result = est.predict(path)
            row[0].parent.mkdir(parents=True, exist_ok=True)
            for fmt, target in zip(formats, row, strict=True):
                if fmt == "color":
                    ok, buf = cv2.imencode(".png", result.colorize(args.cmap, args.invert))
                    if not ok:
                        raise InputError(f"could not encode the depth image of {path} as PNG")
                    atomic_write_bytes(target, buf.tobytes())
                elif fmt == "png16":
                    save_png16(target, result.inverse_depth)
                elif fmt == "npy":
                    save_npy(target, result.inverse_depth)
                else:
                    write_cloud(args, result, cv2.imread(str(path), cv2.IMREAD_COLOR), target)
    print(f"wrote {len(images) * len(formats)} file(s) for {len(images)} image(s) under {out}")
    return 0


def run_stream(args: argparse.Namespace, source: object, save: str | None, show: bool) -> int:
    """Shared by ``stream`` and ``demo``: run, show and/or save side by side, report progress and FPS."""
    from .capture import WINDOW, SourceState, StatusEvent, VideoOutput

    targets = [*([save] if save else []), *([WINDOW] if show else [])]
    check_cloud_options(args, bool(args.ply_every))
    clouds = Path(args.ply_dir)
    if args.ply_every:
        clouds.mkdir(parents=True, exist_ok=True)
    progress = Progress()

    def report(event: StatusEvent) -> None:  # from the capture thread: a stall, an outage, a recovery
        if event.state not in (SourceState.RUNNING, SourceState.ENDED, SourceState.CLOSED):
            progress.end(f"source {event.state.value}: {event.detail}")

    stream = {"max_frames": args.max_frames, "on_status": report, "stabilize": args.stabilize}
    with _estimator(args) as est, est.stream(source, **stream) as frames:
        fps = frames.source.fps_hint
        outputs = [VideoOutput(t, fps=fps, cmap=args.cmap, invert=args.invert) for t in targets]
        try:
            for i, (frame, result) in enumerate(frames):
                if not all([out.render(frame, result) for out in outputs]):
                    break
                if args.ply_every and i % args.ply_every == 0:
                    write_cloud(args, result, frame, clouds / f"cloud_{i:06d}.ply")
                s = frames.stats
                progress.update(f"{s.frames} frames  {s.fps:5.1f} FPS  infer {s.infer_ms_median:5.1f} ms  "
                                f"latency {s.latency_ms_median:6.1f} ms  dropped {s.dropped}")  # fmt: skip
        except KeyboardInterrupt:
            progress.end("interrupted")
        finally:
            for out in outputs:
                out.close()
        s = frames.stats
    progress.end(f"{s.frames} frames in {s.elapsed_s:.1f} s: stream {s.fps:.1f} FPS, model-only "
                 f"{1e3 / s.infer_ms_median:.1f} FPS (median infer {s.infer_ms_median:.1f} ms), "
                 f"median latency {s.latency_ms_median:.1f} ms, dropped {s.dropped}, timeouts {s.timeouts}"
                 f"; backend {est.backend_name}")  # fmt: skip
    if save:
        print(f"saved {save}")
    return 0


class Progress:
    """One status line: rewritten in place (carriage return) on a terminal, printed as a plain line every
    ``every_s`` seconds when the output is a log file or a pipe."""

    def __init__(self, every_s: float = 1.0, stream: Any = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.every_s = every_s
        self._last = time.perf_counter()
        self._open = False  # a carriage-return line is showing

    def update(self, text: str) -> None:
        if time.perf_counter() - self._last < self.every_s:
            return
        self._last = time.perf_counter()
        if self.tty:
            print(f"\r{text}", end="", flush=True, file=self.stream)
            self._open = True
        else:
            print(text, flush=True, file=self.stream)

    def end(self, text: str) -> None:
        if self._open:
            print(file=self.stream)
            self._open = False
        print(text, flush=True, file=self.stream)


def cmd_stream(args: argparse.Namespace) -> int:
    sources: list[object] = [int(s) if s.isdigit() else s for s in args.source]
    if len(sources) > 1:
        return run_multi_stream(args, sources)
    return run_stream(args, sources[0], args.save, args.show)


def run_multi_stream(args: argparse.Namespace, sources: list[object]) -> int:
    """Several sources in one batch per tick: one output file (NAME_i.mp4) or window per source."""
    from .capture import WINDOW, VideoOutput

    if args.ply_every:
        raise InputError("--ply-every takes one source; run one stream per camera for point clouds")
    progress = Progress()
    with _estimator(args) as est, est.stream(sources, max_frames=args.max_frames, stabilize=args.stabilize,
                                             batch=args.batch) as frames:  # fmt: skip
        outputs: list[list[VideoOutput]] = []
        for i, src in enumerate(frames.sources):
            targets = []
            if args.save:
                save = Path(args.save)
                targets.append(VideoOutput(save.with_name(f"{save.stem}_{i}{save.suffix}"), fps=src.fps_hint,
                                           cmap=args.cmap, invert=args.invert))  # fmt: skip
            if args.show:
                targets.append(
                    VideoOutput(WINDOW, cmap=args.cmap, invert=args.invert, title=f"edgedepth {i}")
                )
            outputs.append(targets)
        try:
            for index, frame, result in frames:
                if not all([out.render(frame, result) for out in outputs[index]]):
                    break
                s = frames.stats
                per = "  ".join(f"[{x.index}] {x.fps:4.1f}" for x in s.sources)
                progress.update(f"{s.frames} frames  {s.fps:5.1f} FPS total  {per}  batch {s.mean_batch:.1f}")
        except KeyboardInterrupt:
            progress.end("interrupted")
        finally:
            for out in (o for targets in outputs for o in targets):
                out.close()
        s = frames.stats
    progress.end(f"{s.frames} frames in {s.elapsed_s:.1f} s: {s.fps:.1f} FPS total, {s.mean_batch:.2f} frames "
                 f"per model call; backend {est.backend_name}")  # fmt: skip
    for x in s.sources:
        print(f"  [{x.index}] {x.uri}: {x.frames} frames, {x.fps:.1f} FPS, dropped {x.dropped}, {x.ended_by}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    return run_stream(args, str(DEMO_CLIP), args.save, args.show)


def cmd_verify(args: argparse.Namespace) -> int:
    from .fileio import atomic_write_bytes
    from .verify import verify

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
        atomic_write_bytes(args.json, json.dumps(report.to_dict(), indent=1).encode())
    return 0 if report.passed else 1


def cmd_serve(args: argparse.Namespace) -> int:
    import ipaddress

    from .serve import DepthServer

    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if not loopback:
        print(f"warning: serving on {args.host}: anyone who can reach this machine can watch the camera",
              file=sys.stderr)  # fmt: skip
    source: object = int(args.source) if args.source.isdigit() else args.source
    with _estimator(args) as est:
        server = DepthServer(est, source, args.host, args.port, cmap=args.cmap, view_fps=args.view_fps,
                             stabilize=args.stabilize)  # fmt: skip
        print(f"serving {args.source} on {server.url} (Ctrl-C stops)", flush=True)
        try:
            server.run()
        except KeyboardInterrupt:
            server.close()
        s = server.stream.stats
        print(f"stopped: {s.frames} frames, {s.fps:.1f} FPS, dropped {s.dropped}; backend {est.backend_name}")
    return 0


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
        print(f"engine {args.model}: {header.precision.value}, built with TensorRT {header.tensorrt_version} "
              f"on {header.device_name} (compute capability {cc}), profile {header.profile.describe()}, "
              f"from {header.onnx_name} (sha256 {header.onnx_sha256[:16]}...), flags {header.flags}")  # fmt: skip
    with _estimator(args) as est:
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


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1 (``--max-frames 0`` would silently process nothing)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer (omit the option for all)")
    return value


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="path to .onnx or .engine (default: the embedded efficientdepth-s)")
    p.add_argument("--verify-sha256", metavar="HEX", help="refuse a --model file whose sha256 differs")
    _add_runtime_options(p)


def _add_runtime_options(p: argparse.ArgumentParser) -> None:
    from .embedded import shipped_precisions

    p.add_argument("--backend", default="auto", help="auto, onnxruntime, openvino or tensorrt")
    p.add_argument(
        "--precision",
        default="fp32",
        choices=shipped_precisions(),
        help="which variant of the embedded model (those that ship)",
    )
    p.add_argument("--threads", type=int, help="inference threads (default: the backend's)")
    p.add_argument(
        "--long-side",
        type=positive_int,
        help="model input's long side in pixels, for models with a dynamic input (default: the spec's); "
        "larger gives finer depth and takes longer",
    )


def _add_view_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cmap", default="turbo", help="turbo, inferno, magma, viridis or gray")
    p.add_argument("--invert", action="store_true", help="reverse the colour map")


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
    _add_model_options(p)
    _add_view_options(p)
    p.set_defaults(func=cmd_predict)

    for name, func, help_text in (("stream", cmd_stream, "depth for a camera, video, folder or URL"),
                                  ("demo", cmd_demo, "the embedded model on the embedded clip")):  # fmt: skip
        p = sub.add_parser(name, help=help_text)
        if name == "stream":
            p.add_argument(
                "source",
                nargs="+",
                help="camera index, /dev/videoN, file, folder, glob, URL or GStreamer pipeline; several "
                "run as one batch per tick (live and file sources may be mixed)",
            )
            p.add_argument(
                "--batch",
                action=argparse.BooleanOptionalAction,
                default=True,
                help="with several sources: one model call for the ready frames (default), or one each",
            )
        p.add_argument("--show", action="store_true", help="show a window (needs a display)")
        p.add_argument(
            "--save", default="demo_depth.mp4" if name == "demo" else None, help="side-by-side .mp4/.avi"
        )
        p.add_argument(
            "--max-frames", type=positive_int, help="stop after this many frames (default: all of them)"
        )
        p.add_argument(
            "--stabilize",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="align each frame's depth to the previous one, against flicker (default: on)",
        )
        p.add_argument("--ply-every", type=positive_int, help="write a metric point cloud every N frames")
        p.add_argument(
            "--ply-dir", default="clouds", help="folder for the --ply-every clouds (default: clouds)"
        )
        add_cloud_options(p)
        _add_model_options(p)
        _add_view_options(p)
        p.set_defaults(func=func)

    p = sub.add_parser(
        "serve", help="a live web viewer: camera and depth side by side, statistics, snapshots"
    )
    p.add_argument(
        "source", help="camera index, /dev/videoN, file (looped), folder, URL or GStreamer pipeline"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0 picks a free one)")
    p.add_argument("--view-fps", type=float, default=15.0, help="most frames a second sent to each viewer")
    p.add_argument("--stabilize", action=argparse.BooleanOptionalAction, default=True, help="see stream")
    _add_model_options(p)
    p.add_argument("--cmap", default="turbo", help="turbo, inferno, magma, viridis or gray")
    p.set_defaults(func=cmd_serve)

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
    _add_runtime_options(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("info", help="model spec, inputs, outputs and available backends")
    p.add_argument("model", nargs="?", help="model file (default: the embedded model)")
    _add_runtime_options(p)
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
