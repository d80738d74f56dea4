"""``edgedepth-quantize`` (or ``python -m edgedepth_quantize``): INT8 and FP16 artifacts behind the accuracy gate.

This module needs the [quantize] extra; ``edgedepth_quantize.main`` checks it before importing this.

edgedepth-quantize int8 edgedepth/models/efficientdepth-s-fp32.onnx -o edgedepth/models/efficientdepth-s-int8.onnx \\
    --calib ../shared/data/images --calib ../shared/data/video --val-rgbd ../shared/data/rgbd
edgedepth-quantize fp16 model-fp32.onnx -o model-fp16.onnx --val-rgbd ../shared/data/rgbd
edgedepth-quantize fp16-weights teacher-fp32.onnx -o teacher.onnx --val-rgbd ../shared/data/rgbd   # smaller file, fp32 compute
edgedepth-quantize build-engine model-int8.onnx --precision int8 -o model-int8.engine   # also `edgedepth build-engine`

Exit status: 0 written; 3 the gate failed (nothing written, the report is); 2 another error; 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import sys

from edgedepth.errors import EdgeDepthError, InputError
from edgedepth.preprocess import parse_hw

from .calibration import DEFAULT_FRAMES, DEFAULT_MIN_FRAMES
from .engine_cli import add_build_engine_parser, argument_type
from .errors import AccuracyGateError
from .gate import GateConfig, GateReport, default_report_path
from .ptq import MODEL_TYPES, PRESETS, PTQSettings

EXIT_GATE_FAILED = 3


def add_gate_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("accuracy gate")
    g.add_argument("--val-rgbd", help="validation RGB-D folder: AbsRel/delta1 against ground truth")
    g.add_argument(
        "--val-images",
        action="append",
        default=[],
        help="no ground truth: agreement with FP32 on these image folders/videos (int8 default: the --calib sources)",
    )
    g.add_argument("--max-drop", type=float, default=0.01, help="allowed AbsRel rise (default 0.01)")
    g.add_argument(
        "--max-delta1-drop", type=float, default=0.01, help="allowed delta1 fall (default 0.01, one point)"
    )
    g.add_argument(
        "--max-skill-drop",
        type=float,
        default=0.02,
        help="allowed rise of the skill against the ground-plane prior, with --val-rgbd (default 0.02)",
    )
    g.add_argument(
        "--val-skill-rgbd",
        help="judge the skill on this RGB-D folder instead of --val-rgbd's (e.g. a larger multi-group set)",
    )
    g.add_argument(
        "--val-video",
        action="append",
        default=[],
        help="also compare the flicker on this video's first 120 frames (repeatable)",
    )
    g.add_argument(
        "--max-flicker-rise",
        type=float,
        default=GateConfig.max_flicker_rise,
        help=f"allowed relative rise of the flicker with --val-video (default {GateConfig.max_flicker_rise})",
    )
    g.add_argument("--long-side", type=int, help="input long side for dynamic models (default: the spec's)")
    g.add_argument(
        "--gate-backend",
        default="onnxruntime",
        choices=("onnxruntime", "openvino"),
        help="runtime for the gate",
    )
    g.add_argument("--report", help="report JSON path (default: <output stem>.report.json)")


def gate_config(args: argparse.Namespace) -> GateConfig:
    return GateConfig(
        rgbd=args.val_rgbd,
        skill_rgbd=args.val_skill_rgbd,
        images=tuple(args.val_images),
        max_drop=args.max_drop,
        max_delta1_drop=args.max_delta1_drop,
        max_skill_drop=args.max_skill_drop,
        long_side=args.long_side,
        backend=args.gate_backend,
        videos=tuple(args.val_video),
        max_flicker_rise=args.max_flicker_rise,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgedepth-quantize", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("int8", help="NNCF post-training INT8 (QDQ ONNX)")
    p.add_argument("model", help="FP32 ONNX file carrying its edgedepth ModelSpec")
    p.add_argument("-o", "--output", required=True, help="INT8 ONNX file to write (only if the gate passes)")
    p.add_argument(
        "--calib",
        action="append",
        required=True,
        help="calibration source: folder of images and/or videos, image glob, image or video file, RGB-D folder (repeatable)",
    )
    p.add_argument(
        "--frames", type=int, default=DEFAULT_FRAMES, help=f"calibration frames (default {DEFAULT_FRAMES})"
    )
    p.add_argument(
        "--min-frames",
        type=int,
        default=DEFAULT_MIN_FRAMES,
        help=f"refuse with fewer usable frames (default {DEFAULT_MIN_FRAMES})",
    )
    p.add_argument(
        "--input-size",
        type=argument_type(lambda t: parse_hw(t, "--input-size")),
        help="calibration input HxW (default: the spec's input size)",
    )
    p.add_argument("--preset", choices=PRESETS, default="performance")
    p.add_argument("--model-type", choices=MODEL_TYPES, default=PTQSettings.model_type)
    p.add_argument("--no-fast-bias-correction", action="store_true", help="use NNCF's full bias correction")
    p.add_argument(
        "--quantize-head", action="store_true", help="also quantize the head's last conv and readout"
    )
    p.add_argument(
        "--ignore",
        action="append",
        default=[],
        help="node or layer to keep in float, e.g. model.encoder.blocks.0._depthwise_conv (repeatable)",
    )
    p.add_argument(
        "--ignore-pattern",
        action="append",
        default=[],
        help="regex matched from the start of node names to keep in float",
    )
    p.add_argument("--subset-size", type=int, help="frames NNCF uses for statistics (default: all)")
    p.add_argument(
        "--accuracy-control",
        action="store_true",
        help="nncf.quantize_with_accuracy_control with the gate's AbsRel (needs --val-rgbd)",
    )
    add_gate_arguments(p)
    p.set_defaults(func=cmd_int8)

    p = sub.add_parser("fp16", help="FP16 ONNX for GPUs (float32 IO, sensitive ops in float32)")
    p.add_argument("model", help="FP32 ONNX file carrying its edgedepth ModelSpec")
    p.add_argument("-o", "--output", required=True, help="FP16 ONNX file to write (only if the gate passes)")
    p.add_argument("--fp16-head", action="store_true", help="also convert the head's last conv and readout")
    add_gate_arguments(p)
    p.set_defaults(func=cmd_fp16)

    p = sub.add_parser(
        "fp16-weights", help="float16 weights, float32 compute: half the file, the same speed on any backend"
    )
    p.add_argument("model", help="FP32 ONNX file carrying its edgedepth ModelSpec")
    p.add_argument("-o", "--output", required=True, help="ONNX file to write (only if the gate passes)")
    add_gate_arguments(p)
    p.set_defaults(func=cmd_fp16_weights)
    add_build_engine_parser(sub)
    return parser


def print_result(report: GateReport, output: str, name: str, report_path: str | None) -> None:
    print(report.table())
    sizes = report.details.get("size_bytes", {})
    print(
        f"wrote {output} ({sizes.get(name, 0) / 1e6:.1f} MB; fp32 {sizes.get('reference', 0) / 1e6:.1f} MB); "
        f"report {report_path or default_report_path(output)}"
    )


def cmd_int8(args: argparse.Namespace) -> int:
    import nncf

    from .ptq import quantize_int8

    nncf.set_log_level(logging.WARNING)  # its per-node INFO lines drown the report

    settings = PTQSettings(
        preset=args.preset,
        model_type=args.model_type,
        fast_bias_correction=not args.no_fast_bias_correction,
        keep_head_float=not args.quantize_head,
        ignored_names=tuple(args.ignore),
        ignored_patterns=tuple(args.ignore_pattern),
        subset_size=args.subset_size,
        accuracy_control=args.accuracy_control,
    )
    report = quantize_int8(
        args.model,
        args.output,
        args.calib,
        gate_config(args),
        settings,
        num_frames=args.frames,
        min_frames=args.min_frames,
        input_size=args.input_size,
        report_path=args.report,
    )
    calib = report.details["calibration"]
    print(
        f"calibration: {calib['frames']} frames at {calib['input_size'][0]}x{calib['input_size'][1]}, "
        f"{calib['skipped']} corrupt/unreadable skipped, sha256 {calib['sha256'][:16]}..."
    )
    print_result(report, args.output, "int8", args.report)
    return 0


def cmd_fp16(args: argparse.Namespace) -> int:
    from .fp16 import export_fp16

    report = export_fp16(args.model, args.output, validated_gate(args), not args.fp16_head, args.report)
    print_result(report, args.output, "fp16", args.report)
    return 0


def cmd_fp16_weights(args: argparse.Namespace) -> int:
    from .fp16 import export_fp16_weights

    report = export_fp16_weights(args.model, args.output, validated_gate(args), args.report)
    print_result(report, args.output, "fp16-weights", args.report)
    return 0


def validated_gate(args: argparse.Namespace) -> GateConfig:
    config = gate_config(args)
    if config.rgbd is None and not config.images:
        raise InputError(f"{args.command} needs --val-rgbd or --val-images for its accuracy gate")
    return config


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except AccuracyGateError as exc:
        print(f"accuracy gate failed: {exc}", file=sys.stderr)
        return EXIT_GATE_FAILED
    except (EdgeDepthError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
