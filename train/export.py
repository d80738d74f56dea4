"""ONNX export: the readout graph plus the model's ModelSpec in ``metadata_props``.

The exported outputs are ``inverse_depth`` and ``confidence``, each (N,1,H,W). With ``dynamic=True`` the
batch and spatial axes are symbolic (any multiple of the spec's ``size_multiple`` works); otherwise the
graph is fixed at ``input_size``. The file is written atomically and checked with ``onnx.checker``; ``verify_parity``
compares ONNX Runtime against PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from edgedepth.artifact import ModelSpec
from edgedepth.fileio import atomic_write_bytes

from .models.efficientdepth import DepthReadout, EfficientDepth

OPSET = 18


def model_spec(
    model: EfficientDepth,
    input_size: tuple[int, int] | None = None,
    dynamic: bool = True,
    provenance: dict[str, str] | None = None,
    name: str | None = None,
    version: str = "0",
) -> ModelSpec:
    """The spec the runtime reads back: everything derives from the model's config (``input_size`` too,
    unless given). ``name`` ships an architecture under another name (efficientdepth-s-v2 as the released
    efficientdepth-s, ``version`` 2)."""
    cfg = model.cfg
    return ModelSpec(
        name=name or cfg.name,
        version=version,
        input_size=input_size or cfg.input_size,
        size_multiple=cfg.size_multiple,
        dynamic_shape=dynamic,
        mean=cfg.mean,
        std=cfg.std,
        provenance=dict(provenance or {}),
    )


def strip_debug_metadata(proto: onnx.ModelProto) -> None:
    """Drop the exporter's per-node debug records (stack traces with local source paths, FX node text):
    they leak the build machine's paths into a shipped file and are a sizeable share of the graph."""
    del proto.graph.metadata_props[:]
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""


def export_onnx(
    model: EfficientDepth,
    path: str | Path,
    input_size: tuple[int, int] | None = None,
    dynamic: bool = True,
    provenance: dict[str, str] | None = None,
    name: str | None = None,
    version: str = "0",
) -> ModelSpec:
    """Export ``model`` to ``path`` (atomically), embed its spec, and run ``onnx.checker``. The input size
    defaults to the model config's."""
    path = Path(path)
    spec = model_spec(model, input_size, dynamic, provenance, name, version)
    input_size = spec.input_size
    wrapper = DepthReadout(model).eval()
    example = torch.zeros(2 if dynamic else 1, 3, *input_size)  # size-1 axes get specialised by torch.export
    dynamic_shapes = None
    if dynamic:
        batch = torch.export.Dim("batch", min=1, max=64)
        step = spec.size_multiple  # the sides stay multiples of the network's stride
        height = torch.export.Dim(f"h{step}", min=1, max=4096 // step)
        width = torch.export.Dim(f"w{step}", min=1, max=4096 // step)
        dynamic_shapes = {"image": {0: batch, 2: step * height, 3: step * width}}
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        program = torch.onnx.export(
            wrapper,
            (example,),
            input_names=[spec.input_name],
            output_names=[spec.output_name, spec.confidence_name or "confidence"],
            opset_version=OPSET,
            dynamo=True,
            dynamic_shapes=dynamic_shapes,
            external_data=False,
            verbose=False,
        )
    proto = program.model_proto
    strip_debug_metadata(proto)
    proto.producer_name = "edgedepth"
    del proto.metadata_props[:]
    for key, value in spec.to_metadata().items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto, full_check=True)
    atomic_write_bytes(path, proto.SerializeToString())
    return spec


TIE_MARGIN = 1e-4  # pixels whose two mixture weights are this close to 0.5 may pick either component


@dataclass(frozen=True)
class Parity:
    max_rel_error: float  # inverse depth, relative to its range, on pixels with a clear component choice
    max_conf_error: float
    tie_fraction: float  # pixels left out because PyTorch's own choice there is a coin flip


def verify_parity(
    model: EfficientDepth, path: str | Path, sizes: list[tuple[int, int]], batch: int = 1, seed: int = 0
) -> Parity:
    """Compare ONNX Runtime with PyTorch on random inputs of ``sizes``.

    The readout takes the more probable of two components, a discontinuous choice: where PyTorch's weights
    are within ``TIE_MARGIN`` of 0.5, rounding differences may flip it, so those pixels are excluded from
    the inverse-depth comparison and counted instead. The confidence is continuous and compared everywhere.
    """
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wrapper = DepthReadout(model).eval()
    gen = torch.Generator().manual_seed(seed)
    rel, conf_err, ties, total = 0.0, 0.0, 0, 0
    for h, w in sizes:
        x = torch.randn(batch, 3, h, w, generator=gen)
        with torch.no_grad():
            ref_inv, ref_conf = (t.numpy() for t in wrapper(x))
        inv, conf = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
        clear = ref_conf >= 0.5 + TIE_MARGIN
        scale = max(float(np.abs(ref_inv).max()), 1e-6)
        if clear.any():
            rel = max(rel, float(np.abs(inv - ref_inv)[clear].max()) / scale)
        conf_err = max(conf_err, float(np.abs(conf - ref_conf).max()))
        ties, total = ties + int((~clear).sum()), total + clear.size
    return Parity(rel, conf_err, ties / total)
