"""The peer-sized reference model: its configuration, its ONNX file (built once, cached) and its FLOPs;
with ``flops`` (FLOPs of any ONNX graph) and ``peak`` (the machine's MatMul ceiling) beside it.

The default configuration is ViT-S/14 with DINOv2-Small's dimensions, the encoder of Depth Anything V2
Small (the full model adds a DPT decoder, so the encoder alone is a lower bound on that model's cost).
Smaller configurations exist for tests. torch is imported only when a file must be built; the file is
cached under a key computed from the configuration, the opset and the module's source, so editing the
model or its options builds a new file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from dataclasses import asdict
from pathlib import Path

from edgedepth.artifact import IMAGENET_MEAN, IMAGENET_STD, ModelSpec
from edgedepth.errors import InputError
from edgedepth.fileio import atomic_write_bytes
from edgedepth.preprocess import round_to_multiple

from .config import VIT_S14, ViTConfig

OPSET = 18
REFERENCE_FORMAT = "1"
MODULE_SOURCE = Path(__file__).resolve().with_name("vit.py")


def reference_spec(cfg: ViTConfig) -> ModelSpec:
    """The spec the reference's ONNX file carries: dynamic batch and size, one output, ``tokens``."""
    side = cfg.patch * cfg.base_grid
    return ModelSpec(
        name=f"reference-{cfg.name}",
        input_size=(side, side),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        size_multiple=cfg.patch,
        dynamic_shape=True,
        output_name="tokens",
        confidence_name=None,
        provenance={
            "architecture": "ViT encoder (DINOv2-Small dimensions by default), random weights",
            "config": json.dumps(asdict(cfg), sort_keys=True),
        },
    )


def reference_hw(hw: tuple[int, int], cfg: ViTConfig = VIT_S14) -> tuple[int, int]:
    """Our input size rounded to the nearest multiple of the patch: 256 -> 252, 384 -> 378, 512 -> 518."""
    return round_to_multiple(hw[0], cfg.patch), round_to_multiple(hw[1], cfg.patch)


def reference_tokens(hw: tuple[int, int], cfg: ViTConfig = VIT_S14) -> int:
    """Tokens the encoder attends over at ``hw``: one per patch plus the class token."""
    return (hw[0] // cfg.patch) * (hw[1] // cfg.patch) + 1


def vit_flops(hw: tuple[int, int], batch: int = 1, cfg: ViTConfig = VIT_S14) -> int:
    """Hand count of the encoder's FLOPs (2 x multiply-accumulates of the convolution and the matmuls).

    Per image: the patch convolution, then per block qkv (3d^2 per token), the attention scores and their
    product with v (t^2 d each), the output projection (d^2 per token) and the MLP (2 d m per token).
    """
    d, m, p = cfg.width, cfg.mlp, cfg.patch
    patches = (hw[0] // p) * (hw[1] // p)
    tokens = patches + 1
    patch_macs = patches * d * 3 * p * p
    block_macs = tokens * (3 * d * d + d * d + 2 * d * m) + 2 * tokens * tokens * d
    return 2 * batch * (patch_macs + cfg.depth * block_macs)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/edgedepth/benchmarks``, or ``~/.cache/edgedepth/benchmarks``."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "edgedepth" / "benchmarks"


def cache_key(cfg: ViTConfig) -> str:
    """A content key: the configuration, the opset, the file format and the torch module's source."""
    source = hashlib.sha256(MODULE_SOURCE.read_bytes()).hexdigest()
    blob = json.dumps(
        {"config": asdict(cfg), "opset": OPSET, "format": REFERENCE_FORMAT, "source": source}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def reference_onnx(cfg: ViTConfig = VIT_S14, cache_dir: str | Path | None = None) -> Path:
    """Path of the reference's ONNX file, exporting it (once, atomically) when the cache lacks it."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / f"reference-{cfg.name}-{cache_key(cfg)}.onnx"
    if path.is_file():
        return path
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--cache-dir {folder}: cannot create the folder ({exc})") from None
    atomic_write_bytes(path, export_reference(cfg))
    return path


def export_reference(cfg: ViTConfig) -> bytes:
    """Build the torch module and export it with dynamic batch, height and width; the ONNX bytes."""
    try:
        import onnx
        import torch

        from .vit import build_vit
    except ImportError as exc:
        raise InputError(
            f"building the reference model needs torch and onnx ({exc}); pip install edgedepth[train], "
            "or pass --cache-dir pointing to a folder that holds an already built reference"
        ) from None
    spec = reference_spec(cfg)
    model = build_vit(cfg)
    side = cfg.patch * 4
    example = torch.zeros(2, 3, side, side + cfg.patch)
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter, chosen for speed
        torch.onnx.export(
            model,
            (example,),
            buffer,  # type: ignore[arg-type]  # the TorchScript exporter writes to file objects too
            input_names=[spec.input_name],
            output_names=[spec.output_name],
            dynamic_axes={
                spec.input_name: {0: "batch", 2: "height", 3: "width"},
                spec.output_name: {0: "batch", 1: "tokens"},
            },
            opset_version=OPSET,
            dynamo=False,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    proto.producer_name = "edgedepth-benchmarks"
    for node in proto.graph.node:
        node.doc_string = ""
    for key, value in spec.to_metadata().items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()
