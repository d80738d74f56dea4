"""The machine's attainable FP32 throughput under a backend: a large MatMul, timed like the models.

The graph is (1, 3, n, n) x (n, n): three n x n x n matrix products, the most favourable work a CPU backend
gets. Its GFLOP/s under the same backend and thread count is the ceiling each model's GFLOP/s is set
against (``fraction_of_peak``); INT8 rows are set against this FP32 ceiling too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from edgedepth.artifact import IMAGENET_MEAN, IMAGENET_STD, ModelSpec
from edgedepth.backends import BackendKind, BackendOptions, open_backend
from edgedepth.fileio import atomic_write_bytes

from ..latency import PerfCounterTimer, latency_stats

MATMUL_SIDE = 1024


def matmul_spec(n: int) -> ModelSpec:
    return ModelSpec(
        name=f"matmul-{n}",
        input_size=(n, n),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        size_multiple=1,
        output_name="y",
        confidence_name=None,
    )


def matmul_onnx(folder: Path, n: int = MATMUL_SIDE) -> Path:
    """Write (once) the MatMul model into ``folder``; its path."""
    path = folder / f"peak-matmul-{n}.onnx"
    if path.is_file():
        return path
    spec = matmul_spec(n)
    weight = (np.random.default_rng(0).standard_normal((n, n)) / np.sqrt(n)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", [spec.input_name, "w"], [spec.output_name])],
        "peak_matmul",
        [helper.make_tensor_value_info(spec.input_name, TensorProto.FLOAT, [1, 3, n, n])],
        [helper.make_tensor_value_info(spec.output_name, TensorProto.FLOAT, [1, 3, n, n])],
        initializer=[numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in spec.to_metadata().items():
        model.metadata_props.add(key=key, value=value)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, model.SerializeToString())
    return path


def matmul_peak(
    kind: BackendKind, threads: int, folder: Path, runs: int = 10, n: int = MATMUL_SIDE
) -> dict[str, Any]:
    """GFLOP/s of the MatMul on ``kind`` with ``threads`` threads: its fastest run (and the median's)."""
    path = matmul_onnx(folder, n)
    backend, _ = open_backend(path, matmul_spec(n), kind, BackendOptions(threads=threads))
    try:
        x = np.random.default_rng(1).standard_normal((1, 3, n, n), dtype=np.float32)
        timer = PerfCounterTimer()
        for _ in range(2):
            backend.infer(x)
        latency = latency_stats([timer.time_call(lambda: backend.infer(x)) for _ in range(runs)])
    finally:
        backend.close()
    flops = 2 * 3 * n**3
    return {
        "workload": f"MatMul (1, 3, {n}, {n}) x ({n}, {n}), fp32",
        "flops": flops,
        "latency_ms": latency,
        "gflops_per_s": flops / latency["min"] / 1e6,  # a ceiling: the fastest run, least disturbed
        "gflops_per_s_median": flops / latency["p50"] / 1e6,
    }
