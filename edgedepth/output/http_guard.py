"""What keeps the web viewer to its own page: the Host values it answers, the headers it sends, and the
limits on slow or many clients.

- **Host**: a page on another site can use DNS rebinding to reach a server on 127.0.0.1 under its own
  name. Only IP literals, ``localhost`` and the names the user allows (``--allow-host``) are answered;
  anything else gets 421 and no data. No CORS header is ever sent, so other origins cannot read responses.
- **Headers**: ``nosniff``, no framing by other pages, ``no-store`` on everything (it is all live), and a
  ``Server`` header without the Python version.
- **Clients**: each connection must finish its request header within ``header_timeout_s`` (a client that
  sends a byte every few seconds would otherwise hold a thread for ever), and at most ``max_clients``
  connections are served at once; a client dropped for either reason is logged, typed, on one line.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import threading
from http.server import ThreadingHTTPServer
from typing import Any

log = logging.getLogger("edgedepth.serve")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}
HEADER_TIMEOUT_S = 5.0
MAX_CLIENTS = 32


def host_name(header: str | None) -> str:
    """The name in a Host header, without its port or IPv6 brackets, lower case; "" when the header is
    malformed (a port that is not a number from 0 to 65535, an unclosed bracket)."""
    value = (header or "").strip().lower()
    if value.startswith("["):  # [::1]:8080
        end = value.find("]")
        name, port = (value[1:end], value[end + 1 :]) if end > 0 else ("", "")
    elif value.count(":") == 1:
        name, port = value.split(":")[0], ":" + value.split(":")[1]
    else:
        name, port = value, ""
    if port and not (port[0] == ":" and port[1:].isascii() and port[1:].isdigit() and int(port[1:]) <= 65535):
        return ""
    return name


def host_allowed(header: str | None, allowed: frozenset[str]) -> bool:
    """Whether a request's Host names this server: an IP literal (no DNS name can rebind it),
    ``localhost`` or one of ``allowed``. A request without a Host header is refused."""
    name = host_name(header)
    if not name:
        return False
    if name == "localhost" or name in allowed:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class GuardedHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that caps its connections, bounds the time to send a request header, keeps a
    client's reset from printing a traceback, and listens on IPv6 when its host is an IPv6 address."""

    daemon_threads = True  # a client's thread never holds up the process
    block_on_close = False
    allow_reuse_address = False  # a port in use is an error, not shared

    def __init__(
        self,
        address: tuple[str, int],
        handler: Any,
        max_clients: int = MAX_CLIENTS,
        header_timeout_s: float = HEADER_TIMEOUT_S,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.max_clients, self.header_timeout_s = max_clients, header_timeout_s
        self.active = 0
        self._active_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._active_lock:
            full = self.active >= self.max_clients
            if not full:
                self.active += 1
        if full:
            log.warning(
                "dropped client %s: %d connections already (the cap)", client_address[0], self.max_clients
            )
            with contextlib.suppress(OSError):
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._active_lock:
                self.active -= 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that reset or timed out is one quiet log line, not a traceback."""
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, OSError | ValueError):
            log.info("client %s left: %s", client_address[0], exc)
            return
        super().handle_error(request, client_address)


class HeaderDeadline:
    """Closes a connection whose request header is not complete within ``seconds``; ``done()`` disarms it."""

    def __init__(self, connection: socket.socket, client: str, seconds: float) -> None:
        self._connection, self._client = connection, client
        self.expired = False
        self._timer = threading.Timer(seconds, self._expire, args=(seconds,))
        self._timer.daemon = True
        self._timer.start()

    def _expire(self, seconds: float) -> None:
        self.expired = True
        log.warning("dropped client %s: no complete request header within %.0f s", self._client, seconds)
        with contextlib.suppress(OSError):
            self._connection.shutdown(socket.SHUT_RDWR)

    def done(self) -> None:
        self._timer.cancel()
