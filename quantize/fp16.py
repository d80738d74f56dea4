"""FP16 export for GPUs: float16 weights and compute, float32 IO, sensitive ops kept in float32; and FP16
*storage* (float16 weights cast to float32 when the model loads) for smaller files that still compute in
float32 on any backend.

Uses ONNX Runtime's converter (``onnxruntime.transformers.float16``) with ``keep_io_types=True`` so callers
still feed and read float32. Ops whose range or precision float16 cannot hold stay in float32: reductions
and normalisations (LayerNormalization, ReduceMean, Softmax), exp/log/pow/sqrt/div, Erf, Sigmoid, and
Resize (whose scale/size inputs must stay exact); the density head's last convolution and the readout stay in
float32 as in INT8. The result goes through the same accuracy gate against FP32 before it is written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgedepth.artifact import Precision
from edgedepth.fileio import file_sha256
from edgedepth.model_file import read_onnx_spec

from .gate import GateConfig, GateReport, publish
from .graph import head_scope, set_spec, topological_sort

FP32_OPS = (
    "LayerNormalization",
    "ReduceMean",
    "Softmax",
    "Sigmoid",
    "Erf",
    "Exp",
    "Log",
    "Pow",
    "Sqrt",
    "Div",
    "Resize",
)


def convert_fp16(model_path: str | os.PathLike[str], keep_head_float: bool = True) -> onnx.ModelProto:
    """The converted model in memory (onnx.ModelProto), with its spec set to precision fp16."""
    import onnxruntime
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model_path = Path(model_path)
    spec = read_onnx_spec(model_path)
    model = onnx.load(str(model_path))
    node_block = head_scope(model) if keep_head_float else []
    converted = convert_float_to_float16(
        model,
        keep_io_types=True,
        op_block_list=sorted({*DEFAULT_OP_BLOCK_LIST, *FP32_OPS}),
        node_block_list=node_block,
    )
    drop_duplicate_nodes(converted)
    topological_sort(converted)
    onnx.checker.check_model(converted)
    provenance = dict(spec.provenance)
    provenance.update(
        {
            "fp16.source_model": model_path.name,
            "fp16.source_sha256": file_sha256(model_path),
            "fp16.converter": f"onnxruntime.transformers.float16 {onnxruntime.__version__}",
            "fp16.fp32_ops": json.dumps(list(FP32_OPS)),
            "fp16.fp32_nodes": json.dumps(node_block),
        }
    )
    return set_spec(converted, spec.with_updates(precision=Precision.FP16, provenance=provenance))


def drop_duplicate_nodes(model: onnx.ModelProto) -> None:
    """Remove exact copies of earlier nodes. The converter emits one Cast per *use* of a float16 initializer
    feeding float32-kept ops (e.g. a LayerNorm weight shared by two norms), all with the same name and
    output, which ONNX Runtime rejects as an invalid graph."""
    seen: set[bytes] = set()
    kept = []
    for node in model.graph.node:
        key = node.SerializeToString(deterministic=True)
        if key not in seen:
            seen.add(key)
            kept.append(node)
    if len(kept) != len(model.graph.node):
        del model.graph.node[:]
        model.graph.node.extend(kept)


def export_fp16(
    model_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    gate: GateConfig,
    keep_head_float: bool = True,
    report_path: str | os.PathLike[str] | None = None,
) -> GateReport:
    """Convert to FP16 and write ``output`` only if the accuracy gate against the FP32 model passes."""
    converted = convert_fp16(model_path, keep_head_float)
    details = {
        "precision": "fp16",
        "reference_model": os.fspath(model_path),
        "fp32_ops": list(FP32_OPS),
        "keep_head_float": keep_head_float,
    }
    return publish(converted, output, model_path, gate, report_path, details, candidate_name="fp16")


def store_weights_fp16(model_path: str | os.PathLike[str], min_elements: int = 16) -> onnx.ModelProto:
    """The model with its float32 weights stored as float16, each behind a Cast back to float32.

    Runtimes fold the casts when they load the model, so compute stays float32 (at full CPU speed) and only
    the weights' rounding to float16 (relative error <= 2^-11) changes the outputs. The spec's precision
    stays fp32; its provenance records the storage.
    """
    model_path = Path(model_path)
    spec = read_onnx_spec(model_path)
    model = onnx.load(str(model_path))
    casts = []
    for init in model.graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT or int(np.prod(init.dims)) < min_elements:
            continue
        name = init.name
        init.CopyFrom(
            numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), f"{name}__fp16")
        )
        casts.append(helper.make_node("Cast", [f"{name}__fp16"], [name], to=onnx.TensorProto.FLOAT))
    nodes = [*casts, *model.graph.node]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.checker.check_model(model)
    provenance = {
        **spec.provenance,
        "weights.storage": f"float16 ({len(casts)} tensors), cast to float32 at load",
        "weights.source_model": model_path.name,
        "weights.source_sha256": file_sha256(model_path),
    }
    return set_spec(model, spec.with_updates(provenance=provenance))


def export_fp16_weights(
    model_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    gate: GateConfig,
    report_path: str | os.PathLike[str] | None = None,
) -> GateReport:
    """Store the weights as float16 and write ``output`` only if the accuracy gate against FP32 passes."""
    details = {"precision": "fp32 compute, float16 weights", "reference_model": os.fspath(model_path)}
    converted = store_weights_fp16(model_path)
    return publish(converted, output, model_path, gate, report_path, details, candidate_name="fp16-weights")
