"""Tiny ONNX depth models built with the onnx helper API, for backend and estimator tests.

The graph is one 3x3 convolution from 3 to 2 channels (padding 1): channel 0 is ``inverse_depth`` and
sigmoid(channel 1) is ``confidence``, both (N, 1, H, W). ``tiny_depth_reference`` computes the same in numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgedepth.artifact import ModelSpec

TINY_INPUT_SIZE = (32, 32)


def tiny_weights(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The convolution's weight (2, 3, 3, 3) and bias (2,), deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.3, (2, 3, 3, 3)).astype(np.float32), rng.normal(0, 0.1, 2).astype(np.float32)


def tiny_spec(dynamic: bool = True, **changes: object) -> ModelSpec:
    """The spec the tiny model carries in its metadata."""
    spec = ModelSpec(
        name="tiny-depth",
        input_size=TINY_INPUT_SIZE,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        size_multiple=8,
        dynamic_shape=dynamic,
    )
    return spec.with_updates(**changes) if changes else spec


def make_tiny_depth_onnx(
    path: str | Path, dynamic: bool = True, seed: int = 0, spec: ModelSpec | None = None
) -> Path:
    """Write the tiny model (dynamic N/H/W, or fixed 1x3x32x32) with ``spec``'s metadata; return the path."""
    path = Path(path)
    spec = spec or tiny_spec(dynamic)
    weight, bias = tiny_weights(seed)
    dims: list[int | str] = ["batch", 3, "height", "width"] if dynamic else [1, 3, *TINY_INPUT_SIZE]
    out_dims: list[int | str] = [dims[0], 1, dims[2], dims[3]]
    inits = [
        numpy_helper.from_array(weight, "conv_w"),
        numpy_helper.from_array(bias, "conv_b"),
        numpy_helper.from_array(np.array([0], np.int64), "c0"),
        numpy_helper.from_array(np.array([1], np.int64), "c1"),
        numpy_helper.from_array(np.array([2], np.int64), "c2"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
    ]
    nodes = [
        helper.make_node("Conv", [spec.input_name, "conv_w", "conv_b"], ["features"], pads=[1, 1, 1, 1]),
        helper.make_node("Slice", ["features", "c0", "c1", "axis1"], [spec.output_name]),
        helper.make_node("Slice", ["features", "c1", "c2", "axis1"], ["logit"]),
    ]
    outputs = [helper.make_tensor_value_info(spec.output_name, TensorProto.FLOAT, out_dims)]
    if spec.confidence_name is not None:
        nodes.append(helper.make_node("Sigmoid", ["logit"], [spec.confidence_name]))
        outputs.append(helper.make_tensor_value_info(spec.confidence_name, TensorProto.FLOAT, out_dims))
    graph = helper.make_graph(
        nodes,
        "tiny_depth",
        [helper.make_tensor_value_info(spec.input_name, TensorProto.FLOAT, dims)],
        outputs,
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgedepth-tests"
    )
    model.ir_version = 8  # readable by every supported onnxruntime and openvino
    for key, value in spec.to_metadata().items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def tiny_depth_reference(batch: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """The tiny model's outputs computed in numpy (float64, then float32)."""
    weight, bias = tiny_weights(seed)
    x = np.pad(batch.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    n, _, h, w = batch.shape
    out = np.zeros((n, 2, h, w))
    for dy in range(3):
        for dx in range(3):
            out += np.einsum("oc,nchw->nohw", weight[:, :, dy, dx], x[:, :, dy : dy + h, dx : dx + w])
    out += bias[None, :, None, None]
    return {
        "inverse_depth": out[:, :1].astype(np.float32),
        "confidence": (1 / (1 + np.exp(-out[:, 1:2]))).astype(np.float32),
    }


def write_random_rgbd(root: Path, frames: int, hw: tuple[int, int], seed: int = 0) -> Path:
    """An RGB-D folder of random frames (rgb.png, depth.npy in 0.5-4 m), for scoring paths end to end."""
    import cv2

    rng = np.random.default_rng(seed)
    for i in range(frames):
        frame = root / f"f{i}"
        frame.mkdir(parents=True)
        cv2.imwrite(str(frame / "rgb.png"), rng.integers(0, 255, (*hw, 3), dtype=np.uint8))
        np.save(frame / "depth.npy", rng.uniform(0.5, 4.0, hw).astype(np.float32))
    return root
