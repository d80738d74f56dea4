"""``edgedepth-train`` (or ``python -m edgedepth_train``): train, evaluate and export EfficientDepth.

edgedepth-train train --recipe efficientdepth-s --out runs/default [--resume runs/default/checkpoint.safetensors]
torchrun --nproc_per_node 2 -m edgedepth_train train --recipe ... --out ...
edgedepth-train eval --checkpoint runs/default/checkpoint.safetensors --data ../shared/data/rgbd_real
edgedepth-train eval --onnx model.onnx --data ../shared/data/rgbd_real ../shared/data/rgbd
edgedepth-train render --scenes furniture --frames 20000 --out ~/.cache/edgedepth/renders/furniture-s0
edgedepth-train distill --teacher teacher.onnx --images robot_frames/ --student efficientdepth-s --out runs/distill
edgedepth-train export --checkpoint runs/default/checkpoint.safetensors --out model.onnx
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from edgedepth.errors import EdgeDepthError
from edgedepth.extras import MissingExtraError, require_extra
from edgedepth.metrics import EVAL_LONG_SIDE

# render_cache.SCENE_KINDS, without importing torch before the train extra is checked (a test checks they agree)
SCENE_KINDS = ("furniture", "procedural")


def cmd_train(args: argparse.Namespace) -> None:
    from .recipe import load_recipe
    from .trainer import Trainer, init_distributed

    if args.set:  # the run folder keeps the recipe it really trained with; resuming reads that one
        from .recipe import load_with_overrides, write_run_recipe

        raw = load_with_overrides(args.recipe, args.set)
        recipe = write_run_recipe(raw, args.out, f"{args.recipe} with --set")
        recipe_file = f"{args.out}/recipe.yaml"
    else:
        recipe, recipe_file = load_recipe(args.recipe), args.recipe
    trainer = Trainer(recipe, args.out, init_distributed())
    if args.resume:
        trainer.resume(args.resume)
    if fit(trainer, f"edgedepth-train train --recipe {recipe_file} --out {args.out}", args):
        print(
            f"finished: {args.out}/checkpoint.safetensors ({trainer.images_per_s:.1f} img/s in the last stage)"
        )


def fit(trainer, command: str, args: argparse.Namespace) -> bool:
    """Train; True when every stage finished. Ctrl-C, ``--max-minutes`` or ``--max-steps`` leaves a
    checkpoint: say how to go on; Ctrl-C exits with 130, the others with 0."""
    from .trainer import TrainingInterrupted

    try:
        trainer.fit(max_steps=args.max_steps, max_minutes=args.max_minutes)
        if trainer.stage_index == len(trainer.recipe.stages):
            return True
        stage = trainer.recipe.stages[trainer.stage_index].name
        checkpoint = trainer.out / "checkpoint.safetensors"
        raise TrainingInterrupted(checkpoint, stage, trainer.step, f"--max-steps {args.max_steps}")
    except TrainingInterrupted as exc:
        print(f"{exc}. Resume with:\n  {command} --resume {exc.checkpoint}", file=sys.stderr, flush=True)
        if exc.reason == "interrupted":
            raise SystemExit(130) from None
        return False


def distill_recipe(args: argparse.Namespace) -> dict:
    """The shipped ``distill`` recipe (or ``--recipe``) with the command line's teacher, images and student."""
    from .losses.distill import DEFAULT_NORMALIZATION
    from .recipe import read_recipe

    raw = read_recipe(args.recipe)[0]
    pseudo = [n for n, s in raw["sources"].items() if s.get("kind") == "pseudo"]
    if len(pseudo) != 1:
        raise EdgeDepthError(f"--recipe {args.recipe}: needs exactly one source of kind pseudo")
    source = raw["sources"][pseudo[0]]
    if args.images or args.videos:  # the command line's frames replace the recipe's
        source.pop("images", None)
        source.pop("videos", None)
    overrides = {
        "teacher": args.teacher,
        "teacher_spec": args.teacher_spec,
        "assistant": args.assistant,
        "assistant_spec": args.assistant_spec,
        "assistant_fraction": args.assistant_fraction,
        "images": args.images,
        "videos": args.videos,
        "frame_step": args.frame_step,
        "cache": args.cache,
        "teacher_sides": args.teacher_sides,
        "teacher_flip": args.teacher_flip or None,
    }
    source.update({k: v for k, v in overrides.items() if v is not None})
    raw["model"] = args.student or raw["model"]
    raw["name"] = f"{raw['name']}-{raw['model']}"
    if args.init:
        raw["init"] = args.init
    for stage in raw["stages"]:
        if pseudo[0] in stage["data"]:
            stage["iterations"] = args.steps or stage["iterations"]
            stage["distill_norm"] = args.normalization or stage.get("distill_norm", DEFAULT_NORMALIZATION)
    return raw


def cmd_distill(args: argparse.Namespace) -> None:
    from .recipe import write_run_recipe
    from .trainer import Trainer, init_distributed

    recipe = write_run_recipe(
        distill_recipe(args), args.out, f"{args.recipe} with the command line's options"
    )
    trainer = Trainer(recipe, args.out, init_distributed())
    if args.resume:
        trainer.resume(args.resume)
    if fit(trainer, f"edgedepth-train train --recipe {args.out}/recipe.yaml --out {args.out}", args):
        print(f"finished: {args.out}/checkpoint.safetensors (the run's recipe: {args.out}/recipe.yaml)")


def cmd_eval(args: argparse.Namespace) -> None:
    import json

    from edgedepth.fileio import atomic_write_bytes

    from . import evaluate as ev

    if args.onnx:
        views = [ev.onnx_predictor(args.onnx, side, args.backend) for side in args.long_side]
    else:
        from .checkpoint import load_trained

        model = load_trained(args.checkpoint, args.model)
        views = [ev.torch_predictor(model, side) for side in args.long_side]
    predictor = ev.ViewEnsemble(views, args.flip)  # one view, not mirrored: the model's own results
    sides = "+".join(map(str, args.long_side)) + (", and mirrored" if args.flip else "")
    results = {}
    for root in args.data:
        rows = ev.evaluate_folder(predictor, root)
        title = f"{root} (input long side {sides})"
        print(ev.format_report(rows, title, args.per_frame, args.bootstrap))
        results[str(root)] = ev.report_dict(rows, args.bootstrap)
    if args.json:
        atomic_write_bytes(args.json, json.dumps(results, indent=1).encode())


def cmd_compare(args: argparse.Namespace) -> None:
    from .evaluate import compare_reports

    print("\n".join(compare_reports(Path(args.a), Path(args.b), args.bootstrap)))


def cmd_eval_metric(args: argparse.Namespace) -> None:
    import json

    from edgedepth.fileio import atomic_write_bytes

    from .eval_metric import evaluate, format_table

    result = evaluate(args.onnx, args.data, args.long_side, args.seed)
    print("metric AbsRel / delta1 per group (frames), after each way of finding the scale:")
    print(format_table(result))
    if args.json:
        atomic_write_bytes(args.json, json.dumps(result, indent=1).encode())


def cmd_throughput(args: argparse.Namespace) -> None:
    from .throughput import run

    run(args)


def cmd_render(args: argparse.Namespace) -> None:
    from .data.render_cache import CacheKey, render_cache

    key = CacheKey(
        scenes=args.scenes,
        seed=args.seed,
        size=(args.size[0], args.size[1]),
        views_per_scene=args.views,
        shard_frames=args.shard_frames,
        shadows=not args.no_shadows,
    )
    manifest = render_cache(args.out, args.frames, key, args.workers, args.assets, args.textures)
    frames = sum(s["frames"] for s in manifest["shards"].values())
    skipped = manifest.get("skipped_models", [])
    print(
        f"render cache {args.out}: {frames} frames in {len(manifest['shards'])} shards; {len(skipped)} models "
        f"skipped (unusable geometry or textures){': ' + ', '.join(skipped) if skipped else ''}"
    )


def cmd_preview(args: argparse.Namespace) -> None:
    """Frames of a render cache beside their colourised inverse depth, stacked into one image."""
    import cv2
    import numpy as np

    from edgedepth.fileio import atomic_write_bytes
    from edgedepth.postprocess import colorize, side_by_side

    from .data.render_cache import CachedFrames

    frames = CachedFrames(args.cache)
    picks = (
        np.linspace(0, len(frames) - 1, args.count).round().astype(int) if args.index is None else args.index
    )
    rows = []
    for i in picks:
        sample = frames[int(i)]
        inverse = np.where(sample["depth_m"] > 0, 1.0 / np.maximum(sample["depth_m"], 1e-3), np.nan)
        rows.append(side_by_side(sample["bgr"], colorize(inverse, "turbo")))
    suffix = Path(args.out).suffix.lower() or ".jpg"
    params = [cv2.IMWRITE_JPEG_QUALITY, 90] if suffix in (".jpg", ".jpeg") else []
    ok, data = cv2.imencode(suffix, np.vstack(rows), params)
    if not ok:
        raise EdgeDepthError(f"--out {args.out}: OpenCV cannot write {suffix} images; use .jpg or .png")
    atomic_write_bytes(args.out, data.tobytes())
    print(f"wrote {args.out}: frames {', '.join(str(int(i)) for i in picks)} of {len(frames)}")


def cmd_export(args: argparse.Namespace) -> None:
    import torch

    from .checkpoint import load_checkpoint, load_trained
    from .export import export_onnx, verify_parity

    model = load_trained(args.checkpoint, args.model)
    state = load_checkpoint(args.checkpoint).get("progress", {})  # weights-only files (an average) have none
    provenance = {
        "architecture": model.cfg.name,
        "checkpoint": Path(args.checkpoint).name,
        "recipe_sha256": str(state.get("recipe_sha256", "")),
        "training": args.training_note,
        "torch": torch.__version__,
        **dict(kv.split("=", 1) for kv in args.provenance),
    }
    size = (args.size[0], args.size[1]) if args.size else model.cfg.input_size
    spec = export_onnx(
        model,
        args.out,
        size,
        dynamic=not args.static,
        provenance=provenance,
        name=args.name,
        version=args.version,
    )
    sizes = [size] if args.static else [size, (192, 320), (480, 640)]
    parity = verify_parity(model, args.out, sizes)
    print(
        f"wrote {args.out}: {spec.name}, input {size}, dynamic={spec.dynamic_shape}; ORT vs torch: max rel err "
        f"{parity.max_rel_error:.2e} (inverse depth, {parity.tie_fraction:.2%} tie pixels excluded), "
        f"confidence max abs err {parity.max_conf_error:.2e}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edgedepth-train", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train from a YAML recipe")
    p.add_argument("--recipe", required=True, help="a recipe file, or the name of a shipped one")
    p.add_argument("--out", required=True, help="run folder for checkpoints and the log")
    p.add_argument("--resume", help="checkpoint to resume from")
    p.add_argument("--max-steps", type=int, help="stop after this many steps (smoke runs)")
    p.add_argument("--max-minutes", type=float, help="stop after the step that passes this time, and save")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE",
        help="override a recipe key (YAML value), e.g. batch_size=16; the run keeps OUT/recipe.yaml",
    )  # fmt: skip
    p.set_defaults(func=cmd_train)
    p = sub.add_parser(
        "eval", help="AbsRel / delta1 on RGB-D folders by group, beside the ground-plane prior"
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint")
    src.add_argument("--onnx")
    p.add_argument("--model", help="model name, when the checkpoint header lacks it")
    p.add_argument("--data", nargs="+", default=["../shared/data/rgbd"])
    p.add_argument(
        "--long-side", type=int, nargs="+", default=[EVAL_LONG_SIDE],
        help="input's longer side (protocol: 320); several: the views' normalised mean (a teacher's labels)",
    )  # fmt: skip
    p.add_argument("--flip", action="store_true", help="also average each view mirrored left to right")
    p.add_argument(
        "--backend", choices=("onnxruntime", "openvino"), default="onnxruntime",
        help="runtime for --onnx (default onnxruntime)",
    )  # fmt: skip
    p.add_argument("--per-frame", action="store_true", help="also print every frame's scores")
    p.add_argument("--json", help="write the report (groups and every frame's scores) to this JSON file")
    p.add_argument(
        "--bootstrap", type=int, default=0, metavar="N",
        help="also print the skill's 90%% interval from N draws of frames within groups (e.g. 2000)",
    )  # fmt: skip
    p.set_defaults(func=cmd_eval)
    p = sub.add_parser(
        "compare",
        help="two eval --json reports on the same frames: the paired interval of their skills' ratio",
    )
    p.add_argument("a", help="a report written by edgedepth-train eval --json")
    p.add_argument("b", help="the other report, on the same --data")
    p.add_argument("--bootstrap", type=int, default=2000, metavar="N", help="paired draws (default 2000)")
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser("distill", help="distil a student from a teacher's pseudo-labels on unlabelled images")
    p.add_argument("--teacher", required=True, help=".onnx, .engine, or a .safetensors checkpoint of ours")
    p.add_argument("--teacher-spec", help="JSON of ModelSpec fields, for an ONNX without edgedepth metadata")
    p.add_argument("--teacher-sides", type=int, nargs="+", help="its input long sides, views averaged")
    p.add_argument("--teacher-flip", action="store_true", help="also average the teacher's mirrored views")
    p.add_argument("--images", help="folder of unlabelled images (recursive)")
    p.add_argument("--videos", help="a video file or a folder of videos (every --frame-step-th frame)")
    p.add_argument("--frame-step", type=int)
    p.add_argument("--student", help="the student's registered model name (default: the recipe's)")
    p.add_argument("--init", help="start the student from this checkpoint's weights")
    p.add_argument("--assistant", help="a second teacher, for a random fraction of samples")
    p.add_argument("--assistant-spec")
    p.add_argument("--assistant-fraction", type=float)
    p.add_argument(
        "--normalization", choices=["hybrid", "global", "local", "none"], help="default: the recipe's"
    )
    p.add_argument("--steps", type=int, help="distillation steps (default: the recipe's)")
    p.add_argument("--cache", help="pseudo-label cache folder (default: derived, under ~/.cache/edgedepth)")
    p.add_argument("--recipe", default="distill", help="the recipe to fill in (default: the shipped one)")
    p.add_argument("--out", required=True)
    p.add_argument("--resume", help="checkpoint to resume from")
    p.add_argument("--max-steps", type=int, help="stop after this many steps (smoke runs)")
    p.add_argument("--max-minutes", type=float, help="stop after the step that passes this time, and save")
    p.set_defaults(func=cmd_distill)
    p = sub.add_parser(
        "eval-metric", help="metric accuracy of run-time scale (points, camera height) per group"
    )
    p.add_argument("--onnx", required=True, help="the model (any ONNX the runtime loads)")
    p.add_argument("--data", nargs="+", default=["../shared/data/rgbd_real"])
    p.add_argument("--long-side", type=int, default=EVAL_LONG_SIDE)
    p.add_argument("--seed", type=int, default=0, help="which points are sampled")
    p.add_argument("--json", help="write the table's numbers to this JSON file")
    p.set_defaults(func=cmd_eval_metric)
    p = sub.add_parser(
        "throughput", help="a recipe's training images/s, phase by phase, against the plain configuration"
    )
    p.add_argument("--recipe", required=True, help="a recipe file, or the name of a shipped one")
    p.add_argument("--stage", help="the stage to measure (default: the last, with every loss term)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before them")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE",
        help="override a recipe key (YAML value), e.g. speed.precision=bf16 or stages.*.perceptual_every=2",
    )  # fmt: skip
    p.add_argument("--no-baseline", action="store_true", help="measure the recipe only, not the plain one")
    p.add_argument("--json", help="write the measurements to this JSON file")
    p.set_defaults(func=cmd_throughput)
    p = sub.add_parser("render", help="render labelled frames into a resumable, sharded cache")
    p.add_argument("--scenes", choices=SCENE_KINDS, default="furniture")
    p.add_argument("--frames", type=int, required=True, help="frames wanted in the cache (resumes, or adds)")
    p.add_argument("--out", required=True, help="cache folder, e.g. ~/.cache/edgedepth/renders/furniture")
    p.add_argument("--workers", type=int, default=2, help="render processes (one OpenGL context each)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, nargs=2, default=[240, 320], metavar=("H", "W"))
    p.add_argument("--views", type=int, default=7, help="views rendered per scene")
    p.add_argument("--shard-frames", type=int, default=64)
    p.add_argument("--no-shadows", action="store_true", help="skip shadow maps (faster, flatter lighting)")
    p.add_argument("--assets", help="folder of the sweethome3d-furniture .sh3f libraries")
    p.add_argument("--textures", default="../shared/data/images", help="photographs for walls and floors")
    p.set_defaults(func=cmd_render)
    p = sub.add_parser("preview", help="tile frames of a render cache beside their depth into one image")
    p.add_argument("--cache", required=True)
    p.add_argument("--out", required=True, help="an image file (.jpg or .png)")
    p.add_argument("--count", type=int, default=4, help="frames, evenly spaced through the cache")
    p.add_argument("--index", type=int, nargs="+", help="these frame indices instead")
    p.set_defaults(func=cmd_preview)
    p = sub.add_parser("export", help="export a checkpoint to ONNX with its ModelSpec")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--model")
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="input size (default: the model's)")
    p.add_argument("--static", action="store_true", help="fixed input size instead of dynamic axes")
    p.add_argument("--name", help="the name in the model's spec (default: the architecture's registry name)")
    p.add_argument("--version", default="0", help="the model version in its spec")
    p.add_argument("--training-note", default="")
    p.add_argument(
        "--provenance", nargs="*", default=[], metavar="KEY=VALUE", help="extra provenance entries"
    )
    p.set_defaults(func=cmd_export)
    args = parser.parse_args(argv)
    try:  # torch and friends; an ONNX file is evaluated without them, and rendering names its own needs
        if args.command in ("train", "distill", "export", "throughput") or (
            args.command == "eval" and not args.onnx
        ):
            require_extra("train", f"edgedepth-train {args.command}")
    except MissingExtraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("onnxscript", "onnx_ir"):  # the ONNX exporter's own passes log every rewrite at INFO
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        args.func(args)
    except (EdgeDepthError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
