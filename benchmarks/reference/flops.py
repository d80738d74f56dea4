"""FLOPs of an ONNX model at a given input shape, counted from its graph.

The convention is fvcore's and torch's ``FlopCounterMode``: 2 x the multiply-accumulates of Conv,
ConvTranspose, MatMul, Gemm (with their quantized forms) and ONNX Attention. Element-wise operations,
normalisation, softmax and resizes are not counted; they are a few per cent of a convolutional or
transformer network's arithmetic. Shapes come from ONNX Runtime's symbolic shape inference on a copy of the
graph whose input is fixed to the shape asked for (it follows Shape -> Reshape chains that
``onnx.shape_inference`` leaves unknown); nodes whose shapes stay unknown are reported, never guessed.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from edgedepth.errors import InputError, ModelLoadError

# op type -> (index of the first operand, index of the second operand) in the node's inputs.
OPERANDS = {
    "Conv": (0, 1),
    "ConvInteger": (0, 1),
    "QLinearConv": (0, 3),
    "ConvTranspose": (0, 1),
    "MatMul": (0, 1),
    "MatMulInteger": (0, 1),
    "QLinearMatMul": (0, 3),
    "Gemm": (0, 1),
    "Attention": (0, 1),  # query, key (ai.onnx opset 23)
}
NOT_COUNTED = {"Einsum", "LSTM", "GRU", "RNN", "Loop", "Scan", "If"}  # heavy ops whose cost is left out


@dataclass(frozen=True)
class FlopCount:
    """FLOPs for one input shape, split by op type; ``unresolved`` names nodes whose shapes stayed unknown."""

    input_shape: tuple[int, ...]
    flops: int
    by_op: dict[str, int] = field(default_factory=dict)
    unresolved: tuple[str, ...] = ()
    not_counted: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.unresolved and not self.not_counted


def _shape_of(value: onnx.ValueInfoProto) -> tuple[int, ...] | None:
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
    return None if any(d <= 0 for d in dims) else dims


def fix_input_shape(model: onnx.ModelProto, shape: tuple[int, ...]) -> onnx.ModelProto:
    """A copy of ``model`` whose first graph input has the static ``shape``."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    initializers = {i.name for i in fixed.graph.initializer}
    inputs = [i for i in fixed.graph.input if i.name not in initializers]
    if not inputs:
        raise InputError("the model has no graph input to fix a shape on")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != len(shape):
        raise InputError(f"input {inputs[0].name!r} has rank {len(dims)}; got the shape {shape}")
    for dim, size in zip(dims, shape, strict=True):
        dim.Clear()
        dim.dim_value = int(size)
    del fixed.graph.value_info[:]  # symbolic shapes from the export would conflict with the static ones
    return fixed


def infer_static_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Static shapes of every tensor that shape inference resolves, initializers included."""
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    except Exception:  # onnxruntime's tool missing or unable to handle a graph: onnx's own inference
        inferred = None
    if inferred is None:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    graph = inferred.graph
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    for value in [*graph.value_info, *graph.input, *graph.output]:
        shape = _shape_of(value)
        if shape is not None:
            shapes[value.name] = shape
    return shapes


def node_flops(op_type: str, a: tuple[int, ...], b: tuple[int, ...], out: tuple[int, ...], node) -> int:
    """2 x MACs of one node from its operands' and first output's static shapes."""
    if op_type in ("Conv", "ConvInteger", "QLinearConv"):
        return 2 * math.prod(out) * math.prod(b[1:])  # weight (Cout, Cin/group, *kernel)
    if op_type == "ConvTranspose":
        return 2 * math.prod(a) * math.prod(b[1:])  # weight (Cin, Cout/group, *kernel), over input pixels
    if op_type == "Gemm":
        trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
        return 2 * math.prod(out) * (a[0] if trans_a else a[1])
    if op_type == "Attention":
        keys = b[-2] if len(b) == 4 else b[1]  # (B, heads, S, D) or (B, S, heads * D)
        return 2 * math.prod(a) * keys + 2 * math.prod(out) * keys  # Q K^T, then the weights times V
    return 2 * math.prod(out) * a[-1]  # matmuls: every output element is a dot product of length K


def count_flops(model: onnx.ModelProto | str | Path, input_shape: tuple[int, ...]) -> FlopCount:
    """Count the FLOPs of ``model`` (a proto or an .onnx path) for one input of ``input_shape``."""
    if not isinstance(model, onnx.ModelProto):
        try:
            model = onnx.load(str(model))
        except Exception as exc:
            raise ModelLoadError(f"{model}: not a readable ONNX model ({exc})") from None
    shapes = infer_static_shapes(fix_input_shape(model, tuple(input_shape)))
    by_op: Counter[str] = Counter()
    unresolved: list[str] = []
    not_counted = sorted({n.op_type for n in model.graph.node if n.op_type in NOT_COUNTED})
    for node in model.graph.node:
        if node.op_type not in OPERANDS or node.domain not in ("", "ai.onnx"):
            continue
        first, second = OPERANDS[node.op_type]
        names = [node.input[first], node.input[second], node.output[0]]
        operands = [shapes.get(name) for name in names]
        if any(s is None for s in operands):
            unresolved.append(node.name or f"{node.op_type}({names[2]})")
            continue
        a, b, out = operands
        by_op[node.op_type] += node_flops(node.op_type, a, b, out, node)  # type: ignore[arg-type]
    return FlopCount(
        tuple(input_shape), sum(by_op.values()), dict(by_op), tuple(unresolved), tuple(not_counted)
    )


class FlopCounter:
    """Counts for one model file at several shapes, loading the file once and caching each count."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._model: onnx.ModelProto | None = None
        self._counts: dict[tuple[int, ...], FlopCount] = {}

    def __call__(self, input_shape: tuple[int, ...]) -> FlopCount:
        key = tuple(int(d) for d in input_shape)
        if key not in self._counts:
            if self._model is None:
                try:
                    self._model = onnx.load(str(self.path))
                except Exception as exc:
                    raise ModelLoadError(f"{self.path}: not a readable ONNX model ({exc})") from None
            self._counts[key] = count_flops(self._model, key)
        return self._counts[key]
