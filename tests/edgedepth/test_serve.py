"""``edgedepth serve``: the live web viewer, over HTTP and in a real browser (Debian's chromium, headless)."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgedepth import DepthEstimator
from edgedepth.errors import InputError
from edgedepth.serve import DepthServer
from edgedepth_benchmarks.serve import measure


@pytest.fixture(scope="module")
def video(video_dir: Path) -> str:
    return str(video_dir / "vtest.avi")


def get(url: str) -> urllib.request.http.client.HTTPResponse:  # type: ignore[name-defined]
    return urllib.request.urlopen(url, timeout=10)


def test_three_clients_one_slow_get_the_newest_frames_and_leave_no_threads(video: str) -> None:
    with DepthEstimator(backend="onnxruntime") as est:
        r = measure(est, video, seconds=3.0, clients=3, warmup=1.0)
    slow, *fast = r["frames_per_client"]
    assert not r["client_errors"] and r["clients_seen_by_server"] == 3
    assert all(f > 0 for f in fast) and 0 < slow < min(fast)  # the slow one skips frames, nobody waits for it
    assert r["fps_no_client"] > 0 and r["fps_with_clients"] > 0
    assert r["threads"]["after"] == r["threads"]["before"] < r["threads"]["during"]


def test_stats_snapshot_page_and_unknown_paths(video: str) -> None:
    with DepthEstimator(backend="onnxruntime") as est, DepthServer(est, video, port=0) as server:
        with get(server.url + "snapshot") as r:
            scale, offset = float(r.headers["X-Depth-Scale"]), float(r.headers["X-Depth-Offset"])
            png = cv2.imdecode(np.frombuffer(r.read(), np.uint8), cv2.IMREAD_UNCHANGED)
        assert png.dtype == np.uint16 and png.shape == (576, 768)
        assert scale > 0 and np.isfinite(offset) and png.max() == 65535
        stats = json.loads(get(server.url + "stats").read())
        assert stats["model"] == "efficientdepth-s" and stats["backend"] == "onnxruntime"
        assert stats["frames"] > 0 and stats["fps"] > 0 and stats["source_state"] == "running"
        page = get(server.url).read().decode()
        assert 'src="/stream.mjpg"' in page and 'fetch("/stats"' in page
        with pytest.raises(urllib.error.HTTPError, match="404"):
            get(server.url + "nothing")


def test_a_port_in_use_is_named(video: str) -> None:
    with socket.socket() as s, DepthEstimator(backend="onnxruntime") as est:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(InputError, match=f"port {port} on 127.0.0.1 is in use"):
            DepthServer(est, video, port=port)


def test_the_cli_warns_on_a_public_address_and_stops_on_ctrl_c_within_2_s(video: str) -> None:
    cmd = [sys.executable, "-m", "edgedepth.cli", "serve", video, "--host", "0.0.0.0", "--port", "0", "--backend",
           "onnxruntime"]  # fmt: skip
    # As in a terminal: a runner started in the background would pass SIGINT on as ignored.
    restore_ctrl_c = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=restore_ctrl_c
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert "serving" in line, line + (proc.stderr.read() if proc.stderr else "")
        port = int(line.rsplit(":", 1)[1].split("/")[0])
        deadline = time.monotonic() + 20
        while json.loads(get(f"http://127.0.0.1:{port}/stats").read())["frames"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        with get(f"http://127.0.0.1:{port}/stream.mjpg") as viewer:  # a client is watching
            viewer.read(1000)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=10)
        assert time.monotonic() - t0 < 2.0
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "warning: serving on 0.0.0.0" in err and "interrupted" in out and " frames in " in out


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [
        CHROMIUM,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--timeout=3000",
        *args,
        url,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run does)"
)
def test_in_a_real_browser_the_view_is_live_and_the_stats_show_fps(video: str, tmp_path: Path) -> None:
    shots = [tmp_path / "first.png", tmp_path / "second.png"]
    with DepthEstimator(backend="onnxruntime") as est, DepthServer(est, video, port=0) as server:
        for i, shot in enumerate(shots):
            if i:
                time.sleep(1.0)
            done = chromium(server.url, "--window-size=1400,700", f"--screenshot={shot}")
            assert shot.exists(), done.stderr[-2000:]
        # --dump-dom fires on the page's load event, which the first MJPEG part can trigger before the
        # first /stats poll has answered; a user sees the figures a poll later, so look up to 5 times
        for _ in range(5):
            dom = chromium(server.url, "--dump-dom").stdout
            stats = dom.split('id="stats">', 1)[-1].split("<", 1)[0]
            if stats.startswith("FPS "):
                break
    first, second = (cv2.imread(str(s)) for s in shots)
    view = (slice(60, 540), slice(20, 1380))  # below the header: camera | depth
    assert first[view].std() > 20, "the image area is blank"
    assert np.abs(first[view].astype(int) - second[view].astype(int)).mean() > 0.5, "the view did not change"
    assert stats.startswith("FPS "), f"the stats line never showed figures: {stats!r}"
    fps = float(stats.split(" ", 2)[1])
    assert fps > 0
