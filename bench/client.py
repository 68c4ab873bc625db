"""A lean HTTP/1.1 client for the enrollment load: the invitees of the bench.

The bench's invitees share the machine's two cores with the server, so what they spend is taken
from the enrollments they measure. httpx spent about 43 ms of CPU per enrollment (its request and
response models, cookie jar, redirects, URL parsing), a fifth of an argon2 hash; this client does
only what the wizard needs (one request per connection, as gunicorn's sync workers close each,
one cookie jar, a Location to follow) and costs well under a millisecond per request. It is not
a general client: it expects the portal's own responses (Content-Length, no chunking).
"""

from __future__ import annotations

import re
import socket
from urllib.parse import urlencode, urlsplit

SET_COOKIE = re.compile(rb"^set-cookie:\s*([^=;\s]+)=([^;\r\n]*)", re.I | re.M)
LOCATION = re.compile(rb"^location:\s*(\S+)", re.I | re.M)
LENGTH = re.compile(rb"^content-length:\s*(\d+)", re.I | re.M)


class Response:
    __slots__ = ("body", "location", "path", "status")

    def __init__(self, status: int, location: str | None, body: bytes, path: str) -> None:
        self.status, self.location, self.body, self.path = status, location, body, path

    @property
    def text(self) -> str:
        return self.body.decode()


class Browser:
    """One person's browser: a cookie jar and redirects followed, on a loopback server."""

    def __init__(self, base: str, timeout: float = 60) -> None:
        parts = urlsplit(base)
        self.address = (parts.hostname, parts.port or 80)
        self.host = parts.netloc.encode()
        self.timeout = timeout
        self.cookies: dict[bytes, bytes] = {}

    def get(self, path: str) -> Response:
        return self._follow(self._send(b"GET", path, None))

    def post(self, path: str, data: dict) -> Response:
        return self._follow(self._send(b"POST", path, urlencode(data).encode()))

    def _follow(self, response: Response) -> Response:
        for _ in range(10):
            if response.status not in (301, 302, 303) or response.location is None:
                return response
            response = self._send(b"GET", response.location, None)
        raise RuntimeError("too many redirects")

    def _send(self, method: bytes, path: str, body: bytes | None) -> Response:
        if path.startswith(("http://", "https://")):
            parts = urlsplit(path)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
        head = [method + b" " + path.encode() + b" HTTP/1.1", b"Host: " + self.host,
                b"Connection: close"]
        if self.cookies:
            head.append(b"Cookie: " + b"; ".join(k + b"=" + v for k, v in self.cookies.items()))
        if body is not None:
            head += [b"Content-Type: application/x-www-form-urlencoded",
                     b"Content-Length: " + str(len(body)).encode()]
        message = b"\r\n".join(head) + b"\r\n\r\n" + (body or b"")
        with socket.create_connection(self.address, timeout=self.timeout) as sock:
            sock.sendall(message)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"{method.decode()} {path}: connection closed early")
                data += chunk
            header, _, rest = data.partition(b"\r\n\r\n")
            length = LENGTH.search(header)
            size = int(length.group(1)) if length else None
            while size is None or len(rest) < size:
                chunk = sock.recv(65536)
                if not chunk:
                    if size is None:  # no length given: the body ends with the connection
                        break
                    raise ConnectionError(f"{method.decode()} {path}: body cut short")
                rest += chunk
        status = int(header[9:12])
        for name, value in SET_COOKIE.findall(header):
            if value in (b"", b'""'):
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        location = LOCATION.search(header)
        return Response(status, location.group(1).decode() if location else None, rest, path)
