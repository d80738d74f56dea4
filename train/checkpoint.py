"""Checkpoints as single safetensors files, written atomically.

A training state is a nested structure of dicts, lists, tensors and plain values (model, optimiser,
scheduler, progress). Tensors go into the safetensors body under their path; everything else is kept as a
JSON skeleton in the header's metadata, with dict keys' types preserved (optimiser state uses int keys).
No pickle is involved, so loading a checkpoint cannot run code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save

from edgedepth.errors import ModelLoadError
from edgedepth.fileio import atomic_write_bytes

SKELETON_KEY = "edgedepth.skeleton"
CHECKSUM_KEY = "edgedepth.tensors_sha256"


def _flatten(obj: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().cpu().contiguous().clone()
        return {"t": path}
    if isinstance(obj, dict):
        return {"d": [[k, _flatten(v, f"{path}/{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, list | tuple):
        return {
            "l": [_flatten(v, f"{path}/{i}", tensors) for i, v in enumerate(obj)],
            "tuple": isinstance(obj, tuple),
        }
    return {"v": obj}


def _unflatten(node: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Any:
    if "t" in node:
        return tensors[node["t"]]
    if "d" in node:
        return {k: _unflatten(v, tensors) for k, v in node["d"]}
    if "l" in node:
        items = [_unflatten(v, tensors) for v in node["l"]]
        return tuple(items) if node.get("tuple") else items
    return node["v"]


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """A checksum of every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def save_checkpoint(path: str | Path, state: dict[str, Any], metadata: dict[str, str] | None = None) -> None:
    """Write ``state`` to ``path`` atomically: a temp file in the same folder, then ``os.replace``. The
    header carries a checksum of the tensors, checked at load."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _flatten(state, "", tensors)
    header = {**(metadata or {}), SKELETON_KEY: json.dumps(skeleton), CHECKSUM_KEY: tensors_sha256(tensors)}
    atomic_write_bytes(path, save(tensors, metadata=header))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors on the CPU). A file that is not a
    checkpoint, or whose tensors do not match their checksum, raises ModelLoadError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - safe_open has no __iter__
        if SKELETON_KEY not in meta:
            raise ModelLoadError(f"{path} is not an edgedepth training checkpoint (no {SKELETON_KEY} header)")
        expected = meta.get(CHECKSUM_KEY)  # absent from checkpoints written before checksums
        if expected is not None and tensors_sha256(tensors) != expected:
            raise ModelLoadError(f"{path}: its tensors do not match their checksum; the file is corrupt")
        return _unflatten(json.loads(meta[SKELETON_KEY]), tensors)
    except ModelLoadError:
        raise
    except Exception as exc:  # safetensors' own errors, a garbled skeleton: name the file
        message = " ".join(str(exc).split())[:200]
        raise ModelLoadError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {message})") from None


def load_model_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Just the model's state dict from a training checkpoint."""
    return load_checkpoint(path)["model"]


def load_trained(checkpoint: str | Path, model_name: str | None = None) -> torch.nn.Module:
    """A registered model with a checkpoint's weights, in eval mode; the name comes from the header."""
    from .models.registry import build_model

    try:
        with safe_open(str(checkpoint), framework="pt") as fh:
            name = model_name or (fh.metadata() or {}).get("model")
    except Exception as exc:  # safetensors' own error for a file that is not one (e.g. a renamed pickle)
        message = " ".join(str(exc).split())[:200]
        raise ModelLoadError(
            f"{checkpoint}: not a readable checkpoint ({type(exc).__name__}: {message})"
        ) from None
    if not name:
        raise ModelLoadError(f"{checkpoint}: no model name in its header; pass the model name")
    model = build_model(name, pretrained=False)
    model.load_state_dict(load_model_weights(checkpoint))
    return model.eval()
