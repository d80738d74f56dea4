"""Training bursts on a borrowed GPU machine: what travels there, and what comes back.

The GPU machine receives the repository plus at most a few megabytes, and returns files of at most 16 MB
each. So (``train/gpu_burst.sh`` runs the middle step there):

- ``pack`` (here): the starting weights in bfloat16 as ``.burst/init.safetensors`` (13 MB for
  efficientdepth-l; from a checkpoint of ours, or the ImageNet-initialised model), and the texture
  photographs shrunk to ``.burst/textures/``. The procedural scenes are generated there by the CPU cores
  while the GPU trains, so every image of a burst is a new one.
- ``finish`` (there): the run's checkpoint, its optimiser moments in bfloat16, split into parts under 16 MB,
  plus the training log and ``burst.json`` (device, images, images/s).
- ``join`` (here): the parts back into one checkpoint, checked against its tensors' checksum; it resumes
  with ``edgedepth-train train --recipe train/recipes/efficientdepth-l-burst.yaml --resume`` and is
  evaluated with ``edgedepth-train eval --checkpoint`` like any other.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PART_BYTES = 15 * 2**20
TEXTURE_SIDE = 320
PART_GLOB = "checkpoint.safetensors.part-*"


def pack(checkpoint: str | None, model: str, textures: str | None, out: Path) -> list[Path]:
    """Write the burst's starting weights (bfloat16) and shrunk textures into ``out``; returns the files."""
    import cv2
    import torch

    from .checkpoint import load_model_weights, save_checkpoint
    from .models.registry import build_model

    if checkpoint is not None:
        weights = load_model_weights(checkpoint)
    else:  # the ImageNet-initialised model, as a fresh run would start
        torch.manual_seed(0)
        weights = build_model(model, pretrained=True).state_dict()
    half = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in weights.items()}
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / "init.safetensors", {"model": half}, metadata={"model": model})
    written = [out / "init.safetensors"]
    if textures is not None:
        from edgedepth.fileio import atomic_write_bytes

        (out / "textures").mkdir(exist_ok=True)
        for path in sorted(Path(textures).iterdir()):
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                continue
            scale = min(1.0, TEXTURE_SIDE / max(img.shape[:2]))
            img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            dest = out / "textures" / f"{path.stem}.jpg"
            atomic_write_bytes(dest, cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
            written.append(dest)
    return written


def compact(state: dict) -> dict:
    """A training state with the optimiser's moments in bfloat16 (AdamW casts them back on resume)."""
    import torch

    optimizer = state["optimizer"]
    moments = {
        index: {k: v.to(torch.bfloat16) if k != "step" and v.is_floating_point() else v for k, v in s.items()}
        for index, s in optimizer["state"].items()
    }
    return {**state, "optimizer": {**optimizer, "state": moments}}


def finish(run: Path, out: Path, device: str) -> dict:
    """Split the run's compacted checkpoint into parts under 16 MB and summarise the burst in ``out``."""
    from safetensors import safe_open

    from .checkpoint import load_checkpoint, save_checkpoint

    source = run / "checkpoint.safetensors"
    state = compact(load_checkpoint(source))
    with safe_open(str(source), framework="pt") as fh:  # the run's model and recipe names travel on
        names = {k: v for k, v in (fh.metadata() or {}).items() if k in ("model", "recipe")}
    out.mkdir(parents=True, exist_ok=True)
    whole = out / "checkpoint.safetensors"
    save_checkpoint(whole, state, metadata=names)
    data = whole.read_bytes()
    whole.unlink()
    parts = []
    for i in range(0, len(data), PART_BYTES):
        part = out / f"checkpoint.safetensors.part-{i // PART_BYTES:02d}"
        part.write_bytes(data[i : i + PART_BYTES])
        parts.append(part.name)
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines() if line.strip()]
    (out / "train_log.jsonl").write_text((run / "train_log.jsonl").read_text())
    progress = state["progress"]
    summary = {
        "device": device,
        "stage": progress["stage"],
        "step": progress["step"],
        "images": log[-1].get("images") if log else 0,
        "img_per_s": log[-1]["img_per_s"] if log else None,
        "parts": parts,
        "bytes": len(data),
    }
    (out / "burst.json").write_text(json.dumps(summary, indent=1))
    return summary


def join(parts_dir: Path, out: Path) -> Path:
    """The returned parts as one checkpoint at ``out``, verified by loading it."""
    from edgedepth.errors import ModelLoadError
    from edgedepth.fileio import atomic_write_bytes

    from .checkpoint import load_checkpoint

    parts = sorted(parts_dir.glob(PART_GLOB))
    if not parts:
        raise ModelLoadError(f"{parts_dir}: no {PART_GLOB} files to join")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, b"".join(p.read_bytes() for p in parts))
    load_checkpoint(out)  # the header's checksum covers every tensor: a missing or damaged part is caught
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edgedepth_train.burst", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="starting weights (bf16) and textures for the GPU machine")
    p.add_argument("--checkpoint", help="start from this checkpoint's weights (default: ImageNet init)")
    p.add_argument("--model", default="efficientdepth-l")
    p.add_argument("--textures", default="../shared/data/images", help="photographs for the scenes")
    p.add_argument("--out", default=".burst")
    p = sub.add_parser("finish", help="(on the GPU machine) split the run's checkpoint for the way back")
    p.add_argument("--run", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="")
    p = sub.add_parser("join", help="the returned parts back into one checkpoint")
    p.add_argument("--parts", required=True, help="the folder the burst's files came back to")
    p.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    from edgedepth.errors import EdgeDepthError

    try:
        if args.command == "pack":
            files = pack(args.checkpoint, args.model, args.textures, Path(args.out))
            total = sum(f.stat().st_size for f in files)
            print(f"packed {len(files)} files, {total / 2**20:.1f} MB, into {args.out} (carry it with .whl)")
        elif args.command == "finish":
            print(json.dumps(finish(Path(args.run), Path(args.out), args.device), indent=1))
        else:
            print(f"joined {join(Path(args.parts), Path(args.out))}")
    except (EdgeDepthError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
