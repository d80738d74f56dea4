"""The edgedepth CLI, run as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgedepth import DepthEstimator


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgedepth.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_info_lists_spec_and_backends(tiny_onnx: Path) -> None:
    done = run_cli("info", str(tiny_onnx))
    assert done.returncode == 0, done.stderr
    for text in ("tiny-depth", "onnxruntime", "openvino", "tensorrt", "backend chosen"):
        assert text in done.stdout


def test_predict_writes_every_format(tiny_onnx: Path, tmp_path: Path) -> None:
    images = []
    for i in range(3):
        images.append(tmp_path / f"img{i}.png")
        cv2.imwrite(str(images[-1]), np.full((40, 56, 3), 60 * i, np.uint8))
    done = run_cli("predict", *map(str, images), "-o", str(tmp_path / "out"), "--model", str(tiny_onnx))
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert (
        "img0_depth.png" in names
        and "img2_inverse_depth.npy" in names
        and "img1_inverse_depth16.png" in names
    )
    assert np.load(tmp_path / "out" / "img0_inverse_depth.npy").shape == (40, 56)


def test_verify_offers_no_precision_and_max_frames_says_it_counts_all_sources() -> None:
    verify_help = run_cli("verify", "--help").stdout
    assert "--backend" in verify_help and "--precision" not in verify_help  # it checks the file it is given
    stream_help = " ".join(run_cli("stream", "--help").stdout.split())
    assert "counted over all of them" in stream_help


def test_predict_takes_folders_and_globs_and_counts_every_file(tiny_onnx: Path, tmp_path: Path) -> None:
    for folder, n in (("a", 3), ("b", 2)):
        (tmp_path / folder).mkdir()
        for i in range(n):
            cv2.imwrite(str(tmp_path / folder / f"{i}.png"), np.full((40, 56, 3), 50 * i, np.uint8))
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    done = run_cli("predict", str(tmp_path / "a"), str(tmp_path / "b" / "*.png"), "-o", str(out),
                   "--model", str(tiny_onnx))  # fmt: skip
    assert done.returncode == 0, done.stderr
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert len(written) == 5 * 4  # colour, 16-bit PNG and its JSON sidecar, .npy
    assert "wrote 20 file(s) for 5 image(s)" in done.stdout
    assert "a/2_depth.png" in written and "b/1_inverse_depth16.json" in written
    empty = tmp_path / "empty"
    empty.mkdir()
    done = run_cli("predict", str(empty), "-o", str(out), "--model", str(tiny_onnx))
    assert done.returncode == 2 and "folder" in done.stderr and "holds no image files" in done.stderr


def test_predict_checks_every_input_before_loading_the_model_or_writing(tmp_path: Path) -> None:
    """A missing image, an unreadable points file: refused before the model (here missing too) is opened and
    before the output folder is made."""
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.zeros((40, 56, 3), np.uint8))
    out, model = tmp_path / "out", str(tmp_path / "no-model.onnx")
    done = run_cli("predict", str(good), str(tmp_path / "gone.png"), "-o", str(out), "--model", model)
    assert done.returncode == 2 and "gone.png does not exist" in done.stderr, done.stderr
    (tmp_path / "cam.json").write_text(
        json.dumps({"fx": 50, "fy": 50, "cx": 28, "cy": 20, "width": 56, "height": 40})
    )
    done = run_cli("predict", str(good), "-o", str(out), "--model", model, "--ply", "--intrinsics",
                   str(tmp_path / "cam.json"), "--metric-points", str(tmp_path / "pts.csv"))  # fmt: skip
    assert done.returncode == 2 and "pts.csv" in done.stderr and "no-model" not in done.stderr, done.stderr
    assert not out.exists()


def test_predict_keeps_same_named_inputs_apart_and_refuses_to_overwrite(
    tiny_onnx: Path, tmp_path: Path
) -> None:
    """a/rgb.png and b/rgb.png (and x.png beside x.jpg) get their own results; a second run needs --overwrite."""
    inputs = []
    for name in ("a/rgb.png", "b/rgb.png", "a/x.png", "a/x.jpg"):
        path = tmp_path / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), np.full((24, 32, 3), 90, np.uint8))
        inputs.append(str(path))
    out = tmp_path / "out"
    done = run_cli("predict", *inputs, "-o", str(out), "--model", str(tiny_onnx), "--format", "npy")
    assert done.returncode == 0, done.stderr
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.npy"))
    assert written == [
        "a/rgb_inverse_depth.npy", "a/x_jpg_inverse_depth.npy", "a/x_png_inverse_depth.npy", "b/rgb_inverse_depth.npy"
    ]  # fmt: skip
    again = run_cli("predict", *inputs, "-o", str(out), "--model", str(tiny_onnx), "--format", "npy")
    assert again.returncode == 2 and "--overwrite" in again.stderr
    again = run_cli(
        "predict", *inputs, "-o", str(out), "--model", str(tiny_onnx), "--format", "npy", "--overwrite"
    )
    assert again.returncode == 0, again.stderr


def test_stream_saves_side_by_side(tiny_onnx: Path, tmp_path: Path) -> None:
    video = tmp_path / "in.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(12):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    out = tmp_path / "out.mp4"
    done = run_cli("stream", str(video), "--save", str(out), "--model", str(tiny_onnx), "--max-frames", "8")
    assert done.returncode == 0, done.stderr
    assert "FPS" in done.stdout and "dropped 0" in done.stdout
    capture = cv2.VideoCapture(str(out))
    assert (
        int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 8 and int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)) == 128
    )


def test_errors_exit_2_with_a_message(tmp_path: Path) -> None:
    done = run_cli("info", str(tmp_path / "missing.onnx"))
    assert done.returncode == 2 and "missing.onnx" in done.stderr
    done = run_cli("stream", "ftp://nowhere/x", "--max-frames", "1")
    assert done.returncode == 2 and "ftp://nowhere/x" in done.stderr


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_max_frames_must_be_positive(value: str) -> None:
    done = run_cli("stream", "0", "--max-frames", value)
    assert done.returncode == 2 and "positive integer" in done.stderr


def test_precision_choices_list_what_ships() -> None:
    done = run_cli("stream", "0", "--precision", "fp16")
    assert done.returncode == 2 and "'fp32'" in done.stderr and "fp16" in done.stderr


def test_ctrl_c_stops_a_stream_with_its_summary(tmp_path: Path) -> None:
    """SIGINT (Ctrl-C) during a stream: the CLI reports and exits (a hang fails the 30 s timeout), with its
    summary line."""
    import signal

    video = tmp_path / "long.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, (320, 240))
    rng = np.random.default_rng(0)
    for _ in range(3000):
        writer.write(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8))
    writer.release()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgedepth.cli", "stream", str(video), "--backend", "onnxruntime"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # As in a terminal: a runner started in the background would pass SIGINT on as ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    assert proc.stdout is not None
    first = proc.stdout.read(1)  # the first live status line: the stream is running
    assert first, proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert "interrupted" in out and "frames in" in out


def test_plugin_commands_come_from_entry_points() -> None:
    """build-engine (quantization tree) and benchmark (benchmarks) register through edgedepth.commands."""
    out = subprocess.run([sys.executable, "-m", "edgedepth.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "build-engine" in out.stdout and "benchmark" in out.stdout
    out = subprocess.run(
        [sys.executable, "-m", "edgedepth.cli", "benchmark", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "--sizes" in out.stdout and "--reference-engine" in out.stdout


def test_point_clouds_need_intrinsics_and_one_scale(tiny_onnx: Path, tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.zeros((48, 64, 3), np.uint8))
    args = ["predict", str(image), "-o", str(tmp_path / "out"), "--model", str(tiny_onnx), "--ply"]
    done = run_cli(*args)
    assert done.returncode == 2 and "--intrinsics" in done.stderr
    done = run_cli(*args, "--intrinsics", str(tmp_path / "cam.json"))
    assert done.returncode == 2 and "--metric-points" in done.stderr and "--camera-height" in done.stderr


def test_predict_writes_a_cloud_from_metric_points(tiny_onnx: Path, tmp_path: Path) -> None:
    from edgedepth.pointcloud import read_ply

    image = tmp_path / "scene.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    cam = tmp_path / "cam.yaml"
    cam.write_text(
        "%YAML:1.0\nimage_width: 64\nimage_height: 48\ncamera_matrix: !!opencv-matrix\n   rows: 3\n   cols: 3\n"
        "   dt: d\n   data: [ 60., 0., 31.5, 0., 60., 23.5, 0., 0., 1. ]\n"
    )
    with DepthEstimator(tiny_onnx) as est:
        inv = est.predict(image).inverse_depth
    rng = np.random.default_rng(1)
    u, v = rng.integers(0, 64, 30), rng.integers(0, 48, 30)
    depth = 1.0 / (0.5 * inv[v, u] - 0.5 * inv.min() + 0.3)  # a metric truth the points measure
    pts = tmp_path / "pts.csv"
    pts.write_text("u,v,depth_m\n" + "\n".join(f"{a},{b},{d}" for a, b, d in zip(u, v, depth, strict=True)))
    out = tmp_path / "out"
    done = run_cli("predict", str(image), "-o", str(out), "--model", str(tiny_onnx), "--format", "npy", "--ply",
                   "--intrinsics", str(cam), "--metric-points", str(pts))  # fmt: skip
    assert done.returncode == 0, done.stderr
    points, colors = read_ply(out / "scene_cloud.ply")
    assert len(points) > 0 and colors is not None and (points[:, 2] > 0).all()
    fit = json.loads((out / "scene_cloud.json").read_text())["metric_fit"]  # how good the scale is
    assert fit["method"] == "points" and fit["inliers"] <= fit["total"] == 30 and fit["error"] < 0.05
    assert f"metric fit (points): scale {fit['scale']:.4g}" in done.stdout and "inliers" in done.stdout
    assert "wrote 3 file(s) for 1 image(s)" in done.stdout  # the .npy, the .ply and its .json
