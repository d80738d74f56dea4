"""Several sources in one stream (``edgedepth.multistream``): every file frame arrives in order per source, the
ready frames run as one batch, a failing source leaves the others running, and close is prompt."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgedepth import DepthEstimator
from edgedepth.capture import VideoSource
from edgedepth.cli import main
from edgedepth.errors import SourceError


class Frames:
    """A capture of the given frames (file-like: then it ends), or one that fails after them."""

    def __init__(self, frames: list[np.ndarray], fail: bool = False, delay_s: float = 0.0) -> None:
        self.frames, self.fail, self.delay_s = list(frames), fail, delay_s

    def read(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(self.delay_s)
        if self.frames:
            return True, self.frames.pop(0)
        if self.fail:
            raise RuntimeError("cable pulled")
        return False, None

    def isOpened(self) -> bool:
        return True

    def release(self) -> None:
        pass


def numbered(n: int, hw: tuple[int, int] = (40, 56), base: int = 0) -> list[np.ndarray]:
    """Frames whose every pixel holds the frame's number, so the order can be checked."""
    return [np.full((*hw, 3), (base + i) % 256, np.uint8) for i in range(n)]


def file_source(frames: list[np.ndarray], **kw: object) -> VideoSource:
    return VideoSource.from_capture(Frames(frames, **kw), live=False, reconnect=False)  # type: ignore[arg-type]


def run(
    est: DepthEstimator, sources: list[VideoSource], **options: object
) -> tuple[dict[int, list[int]], object]:
    seen: dict[int, list[int]] = {}
    with est.stream(sources, **options) as stream:
        for item in stream:
            assert item.result.inverse_depth.shape == item.frame.shape[:2]
            seen.setdefault(item.index, []).append(int(item.frame[0, 0, 0]))
        stats = stream.stats
    return seen, stats


def test_every_file_frame_arrives_in_order_and_ready_frames_share_a_batch(tiny_onnx: Path) -> None:
    with DepthEstimator(tiny_onnx, backend="onnxruntime") as est:
        sources = [file_source(numbered(20, base=0)), file_source(numbered(20, base=100))]
        seen, stats = run(est, sources, stabilize=False)
    assert seen == {0: list(range(20)), 1: list(range(100, 120))}
    assert stats.frames == 40 and [s.frames for s in stats.sources] == [20, 20]
    assert all(s.ended_by == "end of stream" for s in stats.sources)
    assert 1.0 < stats.mean_batch <= 2.0  # both sources' frames went through together at least sometimes


def test_batched_results_equal_single_predictions(tiny_onnx: Path) -> None:
    rng = np.random.default_rng(0)
    a, b = ([rng.integers(0, 256, (40, 56, 3)).astype(np.uint8) for _ in range(3)] for _ in range(2))
    with DepthEstimator(tiny_onnx, backend="onnxruntime") as est:
        with est.stream([file_source(a), file_source(b)], stabilize=False) as stream:
            got = list(stream)
        for item in got:
            np.testing.assert_allclose(
                item.result.inverse_depth, est.predict(item.frame).inverse_depth, atol=1e-5
            )


def test_round_robin_runs_one_frame_per_call(tiny_onnx: Path) -> None:
    with DepthEstimator(tiny_onnx, backend="onnxruntime") as est:
        _, stats = run(est, [file_source(numbered(6)), file_source(numbered(6))], batch=False)
    assert stats.frames == 12 and stats.batches == 12 and stats.mean_batch == 1.0


def test_sources_of_different_sizes_are_grouped_by_input_size(tiny_onnx: Path) -> None:
    with DepthEstimator(tiny_onnx, backend="onnxruntime") as est:
        sources = [file_source(numbered(5, (40, 56))), file_source(numbered(5, (64, 32)))]
        seen, stats = run(est, sources)
    assert [len(seen[0]), len(seen[1])] == [5, 5]
    assert stats.mean_batch == 1.0  # two input sizes never share a call


def test_a_failing_source_is_reported_and_the_others_go_on(tiny_onnx: Path) -> None:
    with DepthEstimator(tiny_onnx, backend="onnxruntime") as est:
        sources = [file_source(numbered(3), fail=True), file_source(numbered(30, base=100), delay_s=0.005)]
        seen, stats = run(est, sources)
    assert seen[1] == list(range(100, 130))  # the healthy source lost nothing
    assert stats.sources[0].ended_by.startswith("error") and "cable pulled" in stats.sources[0].ended_by
    assert stats.sources[1].ended_by == "end of stream"


def test_a_live_source_that_drops_reconnects_while_the_other_keeps_delivering(tiny_onnx: Path) -> None:
    opened = []

    def camera() -> Frames:  # first connection: 5 frames then the cable is pulled; the next one stays up
        opened.append(1)
        base = 0 if len(opened) == 1 else 200
        return Frames(numbered(5 if base == 0 else 10_000, base=base), fail=base == 0, delay_s=0.01)

    live = VideoSource.from_capture(camera, live=True, backoff_s=(0.3, 0.3))
    order: list[tuple[int, int]] = []
    with DepthEstimator(tiny_onnx, backend="onnxruntime") as est:
        stream = est.stream([live, file_source(numbered(10_000, base=100), delay_s=0.005)], stabilize=False)
        for item in stream:
            index, frame = item.index, item.frame
            order.append((index, int(frame[0, 0, 0])))
            if index == 0 and frame[0, 0, 0] >= 200 and sum(i == 0 for i, _ in order) > 10:
                break
        stream.close()
    assert len(opened) >= 2  # it reconnected
    before = max(
        k for k, (i, v) in enumerate(order) if i == 0 and v < 200
    )  # the last frame before the outage
    after = min(k for k, (i, v) in enumerate(order) if i == 0 and v >= 200)  # the first after it
    assert sum(i == 1 for i, _ in order[before:after]) > 5  # the other source went on during the outage


def test_all_sources_failing_raises(tiny_onnx: Path) -> None:
    with DepthEstimator(tiny_onnx, backend="onnxruntime") as est:
        sources = [file_source(numbered(2), fail=True), file_source(numbered(2), fail=True)]
        with pytest.raises(SourceError, match=r"every source failed.*cable pulled"):
            run(est, sources)


def test_a_source_that_cannot_be_opened_is_reported_and_the_others_go_on(
    tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "missing.avi")
    with DepthEstimator(tiny_onnx, backend="onnxruntime") as est:
        seen, stats = run(est, [file_source(numbered(3)), missing, file_source(numbered(4, base=50))])
        with pytest.raises(SourceError, match=r"no source could be opened: .*missing\.avi.*nowhere\.avi"):
            run(est, [missing, str(tmp_path / "nowhere.avi")])
    assert seen == {0: [0, 1, 2], 2: [50, 51, 52, 53]}
    assert [x.index for x in stats.sources] == [0, 1, 2]  # type: ignore[attr-defined]
    failed = stats.sources[1]  # type: ignore[attr-defined]
    assert failed.uri == missing and failed.state == "failed" and "missing.avi" in failed.ended_by
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (64, 48))
    for frame in numbered(5, (48, 64)):
        writer.write(frame)
    writer.release()
    save = tmp_path / "out.mp4"
    argv = [
        "stream",
        str(clip),
        missing,
        "--save",
        str(save),
        "--model",
        str(tiny_onnx),
        "--backend",
        "onnxruntime",
    ]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "warning: [1] error: " in err and "missing.avi" in err
    assert "[0] " in out and "5 frames" in out and (tmp_path / "out_0.mp4").stat().st_size > 0
    assert not (tmp_path / "out_1.mp4").exists()


def test_live_and_file_sources_mix_and_close_returns_the_threads(tiny_onnx: Path) -> None:
    baseline = threading.active_count()
    with DepthEstimator(tiny_onnx, backend="onnxruntime") as est:
        live = VideoSource.from_capture(Frames(numbered(10_000), delay_s=0.01), live=True)
        stream = est.stream([live, file_source(numbered(1000))])
        got = [item.index for item, _ in zip(stream, range(60), strict=False)]
        t0 = time.perf_counter()
        stream.close()
        assert time.perf_counter() - t0 < 2.0
    assert set(got) == {0, 1}
    assert stream.stats.sources[0].ended_by == "closed"
    deadline = time.monotonic() + 3.0
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == baseline


def test_cli_streams_several_videos(
    video_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video = str(video_dir / "vtest.avi")
    save = tmp_path / "out.mp4"
    assert (
        main(["stream", video, video, "--max-frames", "10", "--save", str(save), "--backend", "onnxruntime"])
        == 0
    )
    text = capsys.readouterr().out
    assert "frames per model call" in text and "[1] " in text
    assert (tmp_path / "out_0.mp4").stat().st_size > 0 and (tmp_path / "out_1.mp4").stat().st_size > 0


def test_cli_writes_point_clouds_for_every_source(
    tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clips = []
    for name, base in (("a.avi", 0), ("b.avi", 60)):
        clips.append(tmp_path / name)
        writer = cv2.VideoWriter(str(clips[-1]), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (64, 48))
        for frame in numbered(4, (48, 64), base=base):
            writer.write(frame)
        writer.release()
    cam = tmp_path / "cam.json"
    cam.write_text('{"width": 64, "height": 48, "K": [[60, 0, 31.5], [0, 60, 23.5], [0, 0, 1]]}')
    clouds = tmp_path / "clouds"
    argv = ["stream", *map(str, clips), "--model", str(tiny_onnx), "--backend", "onnxruntime", "--ply-every", "2",
            "--ply-dir", str(clouds), "--intrinsics", str(cam), "--camera-height", "1.2"]  # fmt: skip
    assert main(argv) == 0
    assert sorted(p.name for p in clouds.glob("*.ply")) == [
        f"cloud_{i}_{k:06d}.ply" for i in (0, 1) for k in (0, 2)
    ]
    assert "cloud_1_000002.ply: metric fit (camera height 1.2 m" in capsys.readouterr().out
