"""The web viewer answers only its own page: Host values, headers, slow and surplus clients, bad options.

Every connection is to 127.0.0.1 (or ::1) on a port the test's own server picked; socket timeouts are hang
guards, not timings under test."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgedepth import DepthEstimator
from edgedepth.errors import InputError
from edgedepth.output.http_guard import host_allowed, host_name
from edgedepth.serve import DepthServer


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("clip") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(10):
        writer.write(np.full((48, 64, 3), 20 * i, np.uint8))
    writer.release()
    return str(path)


def exchange(port: int, request: bytes, host: str = "127.0.0.1", guard_s: float = 20.0) -> bytes:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(guard_s)
        s.connect((host, port))
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        return data


def get(port: int, path: str, host_header: str | None) -> bytes:
    head = (
        f"GET {path} HTTP/1.0\r\n" + (f"Host: {host_header}\r\n" if host_header is not None else "") + "\r\n"
    )
    return exchange(port, head.encode())


def test_host_names_parse() -> None:
    assert host_name("127.0.0.1:8080") == "127.0.0.1" and host_name("[::1]:8080") == "::1"
    assert host_name("Robot.Local") == "robot.local"
    allowed = frozenset({"robot.local"})
    for ok in ("127.0.0.1:80", "localhost:8080", "[::1]:1", "10.0.0.7", "robot.local:8080"):
        assert host_allowed(ok, allowed), ok
    bad_ports = ("127.0.0.1:8080.nip.io", "127.0.0.1:99999", "localhost:", "[::1]x", "[::1", "127.0.0.1:８０")
    for bad in (
        "evil.example",
        "evil.example:8080",
        "127.0.0.1.nip.io",
        "",
        None,
        "localhost.evil.example",
        *bad_ports,
    ):
        assert not host_allowed(bad, allowed), bad


def test_only_its_own_hosts_get_data_and_every_response_is_guarded(tiny_onnx: Path, clip: str) -> None:
    with (
        DepthEstimator(tiny_onnx, backend="onnxruntime") as est,
        DepthServer(est, clip, port=0, allow_hosts=["robot.local"]) as server,
    ):
        port = server.httpd.server_address[1]
        for host in ("evil.example", "evil.example:" + str(port), None):
            reply = get(port, "/stats", host)
            assert reply.startswith(b"HTTP/1.0 421"), reply[:80]
            assert b'"fps"' not in reply
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "robot.local"):
            reply = get(port, "/stats", host)
            assert reply.startswith(b"HTTP/1.0 200"), reply[:80]
            head = reply.split(b"\r\n\r\n", 1)[0].decode().lower()
            assert "x-content-type-options: nosniff" in head and "frame-ancestors 'none'" in head
            assert "cache-control: no-store" in head and "access-control" not in head
            server_line = next(line for line in head.splitlines() if line.startswith("server:"))
            assert server_line.strip() == "server: edgedepth", server_line


def test_a_client_that_sends_one_byte_and_waits_is_dropped_at_the_header_deadline(
    tiny_onnx: Path, clip: str
) -> None:
    with (
        DepthEstimator(tiny_onnx, backend="onnxruntime") as est,
        DepthServer(est, clip, port=0, header_timeout_s=1.0) as server,
    ):
        assert exchange(server.httpd.server_address[1], b"G") == b""


def test_surplus_clients_get_503_and_free_their_places(tiny_onnx: Path, clip: str) -> None:
    with (  # a header deadline the idle clients cannot reach even on a loaded machine
        DepthEstimator(tiny_onnx, backend="onnxruntime") as est,
        DepthServer(est, clip, port=0, max_clients=2, header_timeout_s=30.0) as server,
    ):
        port = server.httpd.server_address[1]
        idle = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(2)]
        try:
            for _ in range(100):  # until the server has taken both
                if server.httpd.active == 2:
                    break
                time.sleep(0.05)
            reply = exchange(port, f"GET /stats HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            assert reply.startswith(b"HTTP/1.0 503"), reply[:80]
        finally:
            for s in idle:
                s.close()
        for _ in range(100):  # the dropped idle clients free their places
            if server.httpd.active == 0:
                break
            time.sleep(0.1)
        assert get(port, "/stats", f"127.0.0.1:{port}").startswith(b"HTTP/1.0 200")


def test_a_client_that_resets_mid_stream_leaves_no_traceback(
    tiny_onnx: Path, clip: str, capfd: pytest.CaptureFixture
) -> None:
    with DepthEstimator(tiny_onnx, backend="onnxruntime") as est, DepthServer(est, clip, port=0) as server:
        port = server.httpd.server_address[1]
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
        s.sendall(f"GET /stream.mjpg HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        assert s.recv(1024).startswith(b"HTTP/1.0 200")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        s.close()
        time.sleep(1.0)
        assert get(port, "/stats", f"127.0.0.1:{port}").startswith(b"HTTP/1.0 200")
    assert "Traceback" not in capfd.readouterr().err


def test_ipv6_loopback(tiny_onnx: Path, clip: str) -> None:
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    with DepthEstimator(tiny_onnx, backend="onnxruntime") as est, DepthServer(est, clip, "::1", 0) as server:
        port = server.httpd.server_address[1]
        assert server.url == f"http://[::1]:{port}/"
        reply = exchange(port, f"GET /stats HTTP/1.0\r\nHost: [::1]:{port}\r\n\r\n".encode(), host="::1")
        assert reply.startswith(b"HTTP/1.0 200")


@pytest.mark.parametrize(("option", "message"), [
    (["--cmap", "bogus"], "--cmap 'bogus' is not a known colour map; choose one of 'turbo'"),
    (["--view-fps", "nan"], "--view-fps nan: give a positive, finite rate"),
    (["--view-fps", "inf"], "--view-fps inf"),
])  # fmt: skip
def test_bad_view_options_are_refused_at_start(
    tiny_onnx: Path, clip: str, option: list[str], message: str
) -> None:
    done = subprocess.run([sys.executable, "-m", "edgedepth.cli", "serve", clip, "--port", "0", "--model",
                           str(tiny_onnx), *option], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2 and message in done.stderr, done.stderr
    with pytest.raises(InputError, match="view-fps"), DepthEstimator(tiny_onnx) as est:
        DepthServer(est, clip, port=0, view_fps=float("inf"))


def test_one_viewer_serves_several_sources(tiny_onnx: Path, clip: str, tmp_path: Path) -> None:
    other = tmp_path / "bright.avi"
    writer = cv2.VideoWriter(str(other), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (64, 48))
    for _ in range(10):
        writer.write(np.full((48, 64, 3), 250, np.uint8))
    writer.release()
    with (
        DepthEstimator(tiny_onnx, backend="onnxruntime") as est,
        DepthServer(est, [clip, str(other)], port=0) as server,
    ):
        port = server.httpd.server_address[1]
        host = f"127.0.0.1:{port}"
        page = get(port, "/", host).decode()
        assert 'src="/stream.mjpg?source=0"' in page and 'src="/stream.mjpg?source=1"' in page
        for source in (0, 1):
            snapshot = get(port, f"/snapshot?source={source}", host)
            assert snapshot.startswith(b"HTTP/1.0 200") and b"X-Depth-Scale" in snapshot
        for bad in ("?source=2", "?source=-1", "?source=x", "?source=" + "9" * 40):
            assert get(port, "/snapshot" + bad, host).startswith(b"HTTP/1.0 404")
        stats = get(port, "/stats", host)
        assert b'"sources": 2' in stats


@pytest.mark.parametrize(
    ("url", "expected"),
    [("http://127.0.0.1:8081", ("127.0.0.1", 8081)), ("http://[::1]:0/", ("::1", 0)),
     ("http://robot.local", ("robot.local", 8080))],
)  # fmt: skip
def test_the_viewer_address_is_read_from_an_http_url(url: str, expected: tuple[str, int]) -> None:
    from edgedepth.output.web import parse_web_target

    assert parse_web_target(url) == expected


@pytest.mark.parametrize("url", ["https://127.0.0.1:8080", "127.0.0.1:8080", "http://:80", "http://h:99999",
                                 "http://h:8080/view", "ftp://h"])  # fmt: skip
def test_a_bad_viewer_address_is_named(url: str) -> None:
    from edgedepth.output.web import parse_web_target

    with pytest.raises(InputError, match="http://HOST:PORT"):
        parse_web_target(url)


def test_stream_serves_a_viewer_beside_its_other_outputs(tiny_onnx: Path, clip: str, tmp_path: Path) -> None:
    save = tmp_path / "out.mp4"
    done = subprocess.run([sys.executable, "-m", "edgedepth.cli", "stream", clip, clip, "--out", "http://127.0.0.1:0",
                           "--save", str(save), "--max-frames", "8", "--model", str(tiny_onnx), "--backend",
                           "onnxruntime"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "serving " in done.stdout and "on http://127.0.0.1:" in done.stdout and "2 view(s)" in done.stdout
    assert (tmp_path / "out_0.mp4").is_file() and (tmp_path / "out_1.mp4").is_file()
