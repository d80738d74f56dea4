"""``edgedepth verify``: the golden-output check of a model against its FP32 reference."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgedepth.cli import main
from edgedepth.embedded import default_model_path
from edgedepth.errors import InputError, SourceError
from edgedepth.metrics import agreement, agreement_metrics
from edgedepth.verify import DEFAULT_MAX_ABS_REL, INT8_MAX_ABS_REL, read_frames, verify
from tests.tiny_models import make_tiny_depth_onnx, tiny_spec


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("verify")
    return make_tiny_depth_onnx(root / "ref.onnx", seed=0), make_tiny_depth_onnx(
        root / "garbage.onnx", seed=5
    )


def test_frames_are_picked_while_reading_spread_over_the_whole_video(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 300-frame clip at ``max_frames=5``: five frames from start to end, and never more than ten alive at
    once (the whole clip used to be read into memory first: 1.1 GB for a 795-frame video)."""
    import weakref

    from edgedepth import verify as verify_module

    path = tmp_path / "long.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25.0, (64, 48))
    for i in range(300):
        writer.write(np.full((48, 64, 3), i % 256, np.uint8))
    writer.release()
    alive, most = [0], [0]

    class Counted(verify_module.VideoSource):  # type: ignore[misc,valid-type]
        def __iter__(self):  # type: ignore[no-untyped-def]
            for frame in super().__iter__():
                alive[0] += 1
                most[0] = max(most[0], alive[0])
                weakref.finalize(frame.image, lambda: alive.__setitem__(0, alive[0] - 1))
                yield frame

    monkeypatch.setattr(verify_module, "VideoSource", Counted)
    frames = read_frames(path, 5)
    indices = [int(name.rsplit("#", 1)[1]) for name, _ in frames]
    assert len(indices) == 5 and indices[0] == 0 and indices[-1] >= 300 - 64, indices
    assert np.ptp(np.diff(indices)) <= 64  # evenly spread, to the final stride
    assert most[0] <= 11, most  # ten held, and the one being read
    assert len(read_frames(path, 1000)) == 300


def test_agreement_is_zero_for_identical_maps_and_grows_with_noise() -> None:
    rng = np.random.default_rng(0)
    ref = rng.random((48, 64)).astype(np.float32) + np.linspace(0, 2, 48, dtype=np.float32)[:, None]
    same = agreement(3.0 * ref + 1.0, ref)  # an affine copy agrees exactly
    assert same.abs_rel < 1e-6 and same.max_error < 1e-6 and same.delta1 == 1.0  # float32 input
    noisy = agreement(ref + rng.normal(0, 0.3, ref.shape).astype(np.float32), ref)
    assert noisy.abs_rel > 0.02 and noisy.max_error >= noisy.p99_error >= noisy.abs_rel
    # the gate's figures are the same comparison
    assert agreement_metrics(ref * 2, ref).abs_rel == agreement(ref * 2, ref).abs_rel
    # confidence weighting: errors only where confidence is 0 leave the weighted figure at 0
    broken = ref.copy()
    broken[:8] = ref.max()
    conf = np.ones_like(ref)
    conf[:8] = 0.0
    a = agreement(broken, ref, conf)
    assert a.abs_rel > 0.0 and a.weighted_abs_rel < a.abs_rel


def test_a_model_agrees_with_itself(tiny_pair: tuple[Path, Path]) -> None:
    ref, _ = tiny_pair
    report = verify(ref, reference=ref, max_frames=4, backend="onnxruntime")
    assert report.passed and len(report.frames) == 4
    assert report.summary()["abs_rel"] < 1e-6
    assert report.max_abs_rel == DEFAULT_MAX_ABS_REL


def test_garbage_output_fails_and_names_the_frames(
    tiny_pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref, garbage = tiny_pair
    out = tmp_path / "report.json"
    code = main(["verify", str(garbage), "--reference", str(ref), "--max-frames", "3", "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 1
    assert "FAIL: 3 of 3 frames" in text and "demo.mp4#0: AbsRel" in text
    report = json.loads(out.read_text())
    assert report["passed"] is False and len(report["failed"]) == 3
    assert report["summary"]["abs_rel"] > DEFAULT_MAX_ABS_REL


def test_incompatible_models_are_refused_naming_both(tiny_pair: tuple[Path, Path], tmp_path: Path) -> None:
    ref, _ = tiny_pair
    other = make_tiny_depth_onnx(tmp_path / "no_confidence.onnx", spec=tiny_spec(confidence_name=None))
    with pytest.raises(InputError, match=r"no_confidence\.onnx.*ref\.onnx"):
        verify(other, reference=ref, max_frames=1)


def test_bad_options_are_refused(tiny_pair: tuple[Path, Path], tmp_path: Path) -> None:
    ref, _ = tiny_pair
    with pytest.raises(InputError, match="--max-abs-rel"):
        verify(ref, reference=ref, max_abs_rel=2.0)
    with pytest.raises(SourceError, match=r"missing\.mp4"):
        verify(ref, reference=ref, frames=tmp_path / "missing.mp4")


def test_the_shipped_int8_model_passes_against_fp32() -> None:
    report = verify(default_model_path("int8"), max_frames=4, backend="onnxruntime")
    assert report.max_abs_rel == INT8_MAX_ABS_REL
    assert report.passed, report.table()
