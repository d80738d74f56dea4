"""HTTP requests to the web viewer, on 127.0.0.1 only: garbled request lines, headers and Host values, and
slow clients. Every request gets a status the server chose (never a 500) or is closed by the server within
its header deadline; only its own host names get data; afterwards it still serves, has let every client go
and has printed no traceback. The outcomes join the fuzz table (family "HTTP requests")."""

from __future__ import annotations

import contextlib
import itertools
import socket
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgedepth import DepthEstimator
from edgedepth.serve import DepthServer

from .test_fuzz import SUMMARY

HEADER_TIMEOUT_S = 1.0
GUARD_S = HEADER_TIMEOUT_S + 4.0  # past this without an answer or a close, the request hung
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "CONNECT", "get", "G\x00T", "X" * 9000]
PATHS = ["/", "/stats", "/snapshot", "/stream.mjpg", "/../../etc/passwd", "//stats", "/%00", "/stats?" + "a" * 9000,
         "*", "http://evil.example/stats", "/\xff\xfe", "/snapshot/../stats", ""]  # fmt: skip
VERSIONS = ["HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/9.9", "HTTP/1.1x", "", "HTTP/0.9"]
HOSTS = [None, "{own}", "localhost:{port}", "robot.local", "evil.example", "{own}.nip.io", "localhost.evil.example",
         "", "[::1]:{port}", "127.0.0.1:99999", "h" * 5000, "ロボット.local", "127.0.0.1\x00evil", "0x7f.1"]  # fmt: skip
EXTRA_HEADERS = ["", "Host: evil.example\r\n", "Content-Length: -1\r\n\r\nx", "Transfer-Encoding: chunked\r\n",
                 "X: " + "y" * 70_000 + "\r\n", "no colon here\r\n", "".join(f"X-{i}: 1\r\n" for i in range(150)),
                 "Connection: keep-alive\r\n", "Range: bytes=0-1\r\n"]  # fmt: skip
OWN_HOSTS = {"{own}", "localhost:{port}", "robot.local", "[::1]:{port}"}  # names the server answers with data


def requests(port: int) -> list[tuple[str, bytes, bool]]:
    """(mutation, raw request, whether its Host is one of the server's own) for every combination tried."""
    out = []
    own = f"127.0.0.1:{port}"
    for method, path, version in itertools.product(METHODS[:3], PATHS, VERSIONS[:2]):  # well-formed lines
        out.append((f"{method} {path[:20]!r} {version}", f"{method} {path} {version}", "{own}", ""))
    for method in METHODS[3:]:
        out.append((f"method {method[:12]!r}", f"{method} /stats HTTP/1.0", "{own}", ""))
    for version in VERSIONS[2:]:
        out.append((f"version {version!r}", f"GET /stats {version}".rstrip(), "{own}", ""))
    for host in HOSTS:
        for path in ("/stats", "/snapshot", "/stream.mjpg"):
            out.append((f"host {str(host)[:20]!r} {path}", f"GET {path} HTTP/1.1", host, ""))
    for extra in EXTRA_HEADERS:
        out.append((f"header {extra[:24]!r}", "GET /stats HTTP/1.1", "{own}", extra))
    out += [
        ("empty request", "", None, ""),
        ("bare newline", "\r\n", None, ""),
        ("binary", "\x16\x03\x01\x02", None, ""),
    ]
    result = []
    for mutation, line, host, extra in out:
        head = line + "\r\n" if line else ""
        if host is not None:
            head += f"Host: {host.format(own=own, port=port)}\r\n"
        raw = (head + extra + ("\r\n" if line and not extra.endswith("x") else "")).encode(
            "utf-8", "surrogateescape"
        )
        result.append((mutation, raw, host in OWN_HOSTS and "evil" not in extra))
    return result


def probe(port: int, raw: bytes) -> tuple[bytes, bool]:
    """Send ``raw``; the reply's head (up to the blank line, or what came before the server closed) and
    whether the server neither answered nor closed within GUARD_S."""
    data, deadline = b"", time.monotonic() + GUARD_S
    with socket.create_connection(("127.0.0.1", port), timeout=GUARD_S) as s:
        with contextlib.suppress(
            OSError
        ):  # the server may close first, refusing a line it did not read all of
            s.sendall(raw)
        while b"\r\n\r\n" not in data:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                return data, True
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    return data, False


def outcome(data: bytes, hung: bool, own: bool) -> str:
    if hung:
        return "hang"
    if not data:
        return "typed"  # closed without an answer: refused
    status = data.split(b" ", 2)[1] if data.startswith(b"HTTP/") and data.count(b" ") >= 2 else b""
    if not status.isdigit():
        return "other"
    code = int(status)
    if code == 500:
        return "other"  # an error the server did not mean (the others, 501, 503, 505, it chose)
    if 200 <= code < 300:
        return "finite" if own else "wrong"  # data for a name that is not the server's own: DNS rebinding
    return "typed"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("http") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(10):
        writer.write(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    writer.release()
    return str(path)


def test_http_requests(tiny_onnx: Path, clip: str, capfd: pytest.CaptureFixture) -> None:
    counts: dict[str, int] = {}
    bad = []
    with (
        DepthEstimator(tiny_onnx, backend="onnxruntime") as est,
        DepthServer(
            est, clip, port=0, header_timeout_s=HEADER_TIMEOUT_S, allow_hosts=["robot.local"]
        ) as server,
    ):
        port = server.httpd.server_address[1]
        cases = requests(port)
        for mutation, raw, own in cases:
            result = outcome(*probe(port, raw), own)
            counts[result] = counts.get(result, 0) + 1
            if result not in ("typed", "finite"):
                bad.append(f"{mutation}: {result}")
        # slow clients: half a request line, half a header, then silence; the deadline closes them all
        slow = [b"G", b"GET /stats HTTP/1.1\r\nHo", b"GET /stream.mjpg HTTP/1.1\r\n"]
        sockets = [socket.create_connection(("127.0.0.1", port), timeout=GUARD_S) for _ in slow]
        try:
            for s, part in zip(sockets, slow, strict=True):
                s.sendall(part)
            for s, part in zip(sockets, slow, strict=True):
                try:
                    closed = s.recv(1024) == b""  # the server closes without a word
                except TimeoutError:
                    closed = False
                counts["typed" if closed else "hang"] = counts.get("typed" if closed else "hang", 0) + 1
                if not closed:
                    bad.append(f"slow client {part!r}: not closed within {GUARD_S} s")
        finally:
            for s in sockets:
                s.close()
        for _ in range(100):
            if server.httpd.active == 0:
                break
            time.sleep(0.1)
        active = server.httpd.active  # every client let go, before the last request
        still_serving, _ = probe(port, f"GET /stats HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    SUMMARY["HTTP requests"].update(counts)
    err = capfd.readouterr().err
    assert not bad, f"{len(bad)} of {len(cases) + len(slow)} requests:\n" + "\n".join(bad[:20])
    assert still_serving.startswith(b"HTTP/1.0 200") and active == 0, (still_serving[:40], active)
    assert "Traceback" not in err, err[-2000:]
    assert counts.get("finite", 0) > 20 and counts.get("typed", 0) > 20, counts  # both kinds were reached
