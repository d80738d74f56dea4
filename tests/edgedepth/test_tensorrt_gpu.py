"""TensorRT on a real GPU: engines of the default model, parity with ONNX Runtime, CUDA preprocessing, threads.

Skipped, with the reason, where TensorRT, pycuda or a GPU is missing (CI has none). Run them on a Jetson or
any NVIDIA machine with ``python -m pytest -m gpu tests/edgedepth/test_tensorrt_gpu.py``.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edgedepth import DepthEstimator, default_model_path
from edgedepth.artifact import Precision
from edgedepth.backends import BackendKind, backend_status
from edgedepth.engine_file import read_engine, write_engine
from edgedepth.errors import InputError, ModelLoadError
from edgedepth.metrics import agreement_metrics
from edgedepth.preprocess import preprocess

STATUS = backend_status(BackendKind.TENSORRT)
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.tensorrt,
    pytest.mark.skipif(not STATUS.available, reason=f"TensorRT backend unavailable: {STATUS.reason}"),
]
AGREEMENT_ABSREL = 0.01


@pytest.fixture(scope="module")
def frames(images_dir: Path) -> list[np.ndarray]:
    import cv2

    paths = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:12]
    images = [cv2.imread(str(p)) for p in paths]
    return [im for im in images if im is not None]


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory, images_dir: Path) -> dict[str, Path]:
    from edgedepth_quantize.engine import CalibrationSettings, build_engine

    out = tmp_path_factory.mktemp("engines")
    fp32, int8 = default_model_path(Precision.FP32), default_model_path(Precision.INT8)
    paths = {
        "fp16": out / "fp16.engine",
        "int8-qdq": out / "int8-qdq.engine",
        "int8-cal": out / "int8-cal.engine",
    }
    shapes = (None, None, (4, 3, 256, 256))
    build_engine(fp32, paths["fp16"], "fp16", shapes)
    build_engine(int8, paths["int8-qdq"], "int8", shapes)
    settings = CalibrationSettings(
        sources=(str(images_dir),), cache_path=out / "calibration-cache", frames=64, min_frames=16
    )
    try:
        build_engine(fp32, paths["int8-cal"], "int8", shapes, calibration=settings)
    except InputError as exc:  # TensorRT releases after 10.x have no implicit calibration
        pytest.skip(str(exc))
    return paths


@pytest.fixture(scope="module")
def onnxruntime_outputs(frames: list[np.ndarray]) -> list[np.ndarray]:
    with DepthEstimator(backend="onnxruntime") as est:
        return [est.predict(f).inverse_depth for f in frames]


@pytest.mark.parametrize("name", ["fp16", "int8-qdq", "int8-cal"])
def test_engine_agrees_with_onnxruntime_fp32(
    engines: dict[str, Path], name: str, frames: list[np.ndarray], onnxruntime_outputs: list[np.ndarray]
) -> None:
    with DepthEstimator(engines[name]) as est:
        assert est.backend_name == "tensorrt"
        scores = [
            agreement_metrics(est.predict(f).inverse_depth, ref).abs_rel
            for f, ref in zip(frames, onnxruntime_outputs, strict=True)
        ]
    print(
        f"{name}: agreement AbsRel vs onnxruntime fp32, mean {np.mean(scores):.4f}, max {np.max(scores):.4f}"
    )
    assert float(np.mean(scores)) <= AGREEMENT_ABSREL


def test_cuda_preprocessing_matches_the_cpu_path(engines: dict[str, Path], frames: list[np.ndarray]) -> None:
    """infer_frames (fused kernel into the input buffer) against infer (CPU reference preprocessing)."""
    with DepthEstimator(engines["fp16"]) as est:
        backend = est.backend
        for frame in frames[:4]:
            hw = est.input_hw(frame.shape[:2])
            x, _ = preprocess(frame, est.spec, hw)
            cpu = backend.infer(x)[est.spec.output_name]
            gpu, _ = backend.infer_frames([frame], hw)  # type: ignore[attr-defined]
            # inputs differ by under 1e-3 (test_cuda.py); fp16 layers may round that up to about 1e-2
            assert np.abs(gpu[est.spec.output_name] - cpu).max() <= 1e-2 * max(1.0, float(np.abs(cpu).max()))


def test_batch_of_four_and_cuda_graph_give_the_same_results(
    engines: dict[str, Path], frames: list[np.ndarray]
) -> None:
    with DepthEstimator(engines["fp16"], input_size=(256, 256)) as plain:
        single = [plain.predict(f).inverse_depth for f in frames[:4]]
        batch = [r.inverse_depth for r in plain.predict_batch(frames[:4])]
    with DepthEstimator(engines["fp16"], input_size=(256, 256), cuda_graph=True) as graphed:
        replay = [graphed.predict(f).inverse_depth for f in frames[:4] * 2]
    for a, b, c in zip(single, batch, replay, strict=False):
        assert np.allclose(a, b, atol=1e-2) and np.allclose(a, c, atol=1e-3)


def test_eight_threads_share_one_estimator(engines: dict[str, Path], frames: list[np.ndarray]) -> None:
    with DepthEstimator(engines["fp16"]) as est:
        expected = [est.predict(f).inverse_depth for f in frames]
        errors: list[BaseException] = []

        def worker(seed: int) -> None:
            try:
                order = np.random.default_rng(seed).permutation(len(frames))
                for _ in range(5):
                    for i in order:
                        got = est.predict(frames[i]).inverse_depth
                        assert np.allclose(got, expected[i], atol=1e-3)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors[0]


def test_shape_outside_the_profile_is_refused(engines: dict[str, Path]) -> None:
    with (
        DepthEstimator(engines["fp16"]) as est,
        pytest.raises(InputError, match="outside the engine's profile"),
    ):
        est.backend.infer(np.zeros((8, 3, 256, 256), np.float32))


def test_engine_from_another_tensorrt_is_refused_before_deserializing(
    engines: dict[str, Path], tmp_path: Path
) -> None:
    header, plan = read_engine(engines["fp16"])
    major = int(header.tensorrt_version.split(".")[0])
    path = tmp_path / "old.engine"
    write_engine(path, replace(header, tensorrt_version=f"{major - 1}.0.0.1"), plan)
    with pytest.raises(ModelLoadError, match="rebuild it on this device") as info:
        DepthEstimator(path)
    assert header.tensorrt_version in str(info.value)
