"""DepthEstimator and the streaming pipeline, on real ONNX Runtime / OpenVINO sessions and real videos."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgedepth import DepthEstimator, ModelSpec
from edgedepth.artifact import OutputKind
from edgedepth.embedded import DEMO_CLIP
from edgedepth.errors import InferenceError, InputError, ModelLoadError
from edgedepth.model_file import read_onnx_spec
from edgedepth.preprocess import preprocess, unpad, unpad_and_resize
from tests.tiny_models import make_tiny_depth_onnx, tiny_depth_reference

BACKENDS = ["onnxruntime", "openvino"]


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [
        rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(48, 64), (30, 40), (64, 64), (97, 53)]
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_matches_the_reference_pipeline(
    tiny_onnx: Path, frames: list[np.ndarray], backend: str
) -> None:
    with DepthEstimator(tiny_onnx, backend=backend) as est:
        assert est.backend_name == backend
        for frame in frames:
            result = est.predict(frame)
            # The maps come at the model's resolution and are resized when first read, one by one.
            assert set(result.timings_ms) == {"preprocess", "infer", "postprocess"}
            x, plan = preprocess(frame, est.spec, est.input_hw(frame.shape[:2]))
            ref = tiny_depth_reference(x)
            inv, conf = ref["inverse_depth"], ref["confidence"]
            np.testing.assert_allclose(result.model_inverse_depth, unpad(inv[0, 0], plan), atol=1e-4)
            assert result.inverse_depth.shape == frame.shape[:2] and result.inverse_depth.dtype == np.float32
            assert "resize" in result.timings_ms and "confidence" not in result.__dict__
            assert result.confidence.shape == frame.shape[:2]
            assert result.inverse_depth is result.inverse_depth  # resized once
            np.testing.assert_allclose(result.inverse_depth, unpad_and_resize(inv[0, 0], plan), atol=1e-4)
            np.testing.assert_allclose(result.confidence, unpad_and_resize(conf[0, 0], plan), atol=1e-4)
            assert result.colorize().shape == (*frame.shape[:2], 3)


def test_predict_batch_equals_predict(tiny_onnx: Path, frames: list[np.ndarray]) -> None:
    with DepthEstimator(tiny_onnx) as est:
        batch = est.predict_batch([*frames, frames[0]])
        for frame, result in zip([*frames, frames[0]], batch, strict=True):
            np.testing.assert_allclose(result.inverse_depth, est.predict(frame).inverse_depth, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_threads_sharing_one_estimator_match_a_sequential_run(tiny_onnx: Path, backend: str) -> None:
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (40 + 8 * i, 64, 3), dtype=np.uint8) for i in range(16)]
    with DepthEstimator(tiny_onnx, backend=backend) as est:
        expected = [est.predict(img).inverse_depth for img in images]
        got: dict[int, np.ndarray] = {}

        def work(worker: int) -> None:
            for _ in range(3):
                for i in range(worker, len(images), 8):
                    got[i] = est.predict(images[i]).inverse_depth

        threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for i, exp in enumerate(expected):
        np.testing.assert_allclose(got[i], exp, atol=1e-6)


@pytest.mark.parametrize(
    "bad",
    [None, np.zeros((0, 10, 3), np.uint8), np.zeros((1, 1, 3), np.uint8), np.zeros((32, 32, 7), np.uint8)],
    ids=["none", "empty", "1x1", "7-channels"],
)
def test_bad_images_raise_input_error(tiny_onnx: Path, bad: object) -> None:
    with DepthEstimator(tiny_onnx) as est, pytest.raises(InputError):
        est.predict(bad)  # type: ignore[arg-type]


def test_bad_files_raise_input_error(tiny_onnx: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    with DepthEstimator(tiny_onnx) as est:
        for path in (tmp_path / "notes.txt", tmp_path / "missing.png"):
            with pytest.raises(InputError, match=path.name):
                est.predict(path)


def test_16bit_grey_and_float_images_are_converted(tiny_onnx: Path) -> None:
    with DepthEstimator(tiny_onnx) as est:
        base = est.predict(np.full((32, 48, 3), 128, np.uint8)).inverse_depth
        for image in (np.full((32, 48), 128 * 257, np.uint16), np.full((32, 48, 3), 128 / 255, np.float32)):
            np.testing.assert_allclose(est.predict(image).inverse_depth, base, atol=1e-4)


def test_corrupt_and_truncated_models_raise_model_load_error(tiny_onnx: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    truncated = tmp_path / "truncated.onnx"
    data = tiny_onnx.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    for path in (corrupt, truncated, tmp_path / "missing.onnx", tmp_path / "model.pt"):
        with pytest.raises(ModelLoadError, match=path.name):
            DepthEstimator(path)


def test_third_party_model_needs_an_explicit_spec(tmp_path: Path) -> None:
    """A model without edgedepth metadata loads when the caller describes it with a ModelSpec."""
    import onnx

    path = make_tiny_depth_onnx(tmp_path / "third_party.onnx")
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    onnx.save(proto, str(path))
    with pytest.raises(ModelLoadError, match="spec"):
        DepthEstimator(path)
    spec = ModelSpec.preset(
        "depth-anything-v2", input_size=(28, 28), output_name="inverse_depth", confidence_name="confidence"
    )
    with DepthEstimator(path, spec=spec) as est:
        assert est.predict(np.zeros((50, 70, 3), np.uint8)).inverse_depth.shape == (50, 70)
        assert est.input_hw((50, 70)) == (14, 28)  # aspect kept at the long side, multiples of 14


def test_a_depth_output_is_inverted_so_every_model_reads_alike(tiny_onnx: Path) -> None:
    """``inverse_depth`` means the same for every model: a spec that says ``depth`` gets 1/output, at the
    model's resolution (before the map is resized back to the image; here the image has the input size)."""
    spec = read_onnx_spec(tiny_onnx)
    image = np.random.default_rng(3).integers(0, 256, (*spec.input_size, 3)).astype(np.uint8)
    with (
        DepthEstimator(tiny_onnx) as a,
        DepthEstimator(tiny_onnx, spec=spec.with_updates(output_kind=OutputKind.DEPTH)) as b,
    ):
        raw, inverted = a.predict(image).inverse_depth, b.predict(image).inverse_depth
    assert np.allclose(inverted, 1.0 / np.maximum(raw, 1e-6))


def test_predict_real_photographs(tiny_onnx: Path, images_dir: Path) -> None:
    paths = sorted(images_dir.glob("*.jpg"))[:4] + sorted(images_dir.glob("*.png"))[:2]
    with DepthEstimator(tiny_onnx) as est:
        for path in paths:
            result = est.predict(path)
            assert result.inverse_depth.shape == cv2.imread(str(path)).shape[:2]
            assert np.isfinite(result.inverse_depth).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_closing_while_eight_threads_predict_gives_typed_errors_only(tiny_onnx: Path, backend: str) -> None:
    from edgedepth.errors import EdgeDepthError

    est = DepthEstimator(tiny_onnx, backend=backend)
    image = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    outcomes: list[str] = []
    started = threading.Barrier(9)

    def work() -> None:
        started.wait()
        for _ in range(200):
            try:
                result = est.predict(image)
                assert np.isfinite(result.inverse_depth).all()
                outcomes.append("ok")
            except EdgeDepthError as exc:
                outcomes.append(f"typed: {exc}")
                return
            except Exception as exc:  # what this test exists to catch
                outcomes.append(f"other: {type(exc).__name__}: {exc}")
                return

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    started.wait()
    time.sleep(0.05)
    est.close()
    for t in threads:
        t.join(timeout=60)
    assert not [o for o in outcomes if o.startswith("other")], [o for o in outcomes if o.startswith("other")][
        :3
    ]
    assert any(o.startswith("typed") and "closed" in o for o in outcomes)


def test_a_frame_staged_without_input_is_refused_by_a_cpu_backend(tiny_onnx: Path) -> None:
    """Only a backend that preprocesses on its device takes frames without a model input: a typed error."""
    from edgedepth.predictor import StagedFrame

    with DepthEstimator(tiny_onnx) as est:
        bare = StagedFrame(np.zeros((32, 32, 3), np.uint8), None, None, 0.0)
        with pytest.raises(InferenceError, match=r"tiny.*without its model input"):
            est._predictor.run(bare)


def test_colouring_at_the_models_resolution_looks_the_same_on_a_real_frame() -> None:
    capture = cv2.VideoCapture(str(DEMO_CLIP))
    ok, frame = capture.read()
    capture.release()
    assert ok
    with DepthEstimator() as est:  # the embedded model: real, smooth depth, as the outputs colour it
        result = est.predict(cv2.resize(frame, (768, 576)))
    exact, cheap = result.colorize(), result.colorize(at_model_resolution=True)
    assert cheap.shape == exact.shape == (576, 768, 3) and cheap.dtype == np.uint8
    diff = np.abs(cheap.astype(int) - exact)
    assert diff.mean() < 2 and np.percentile(diff, 99) <= 6  # measured: 0.55 and 3 levels of 255
