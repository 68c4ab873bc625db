"""The browser tests' server closes every response, even when the client resets the connection
(as chromium does after a POST answered with a redirect): the portal's work after a response
(mail delivery, `call_on_close`) then always runs, so no browser test needs a fallback."""

from __future__ import annotations

import socket
import struct
import threading


def test_a_response_is_closed_when_the_client_resets_the_connection(app, live_server):
    closed = threading.Event()

    @app.after_request
    def note_close(response):
        response.call_on_close(closed.set)
        return response

    port = int(live_server.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        # A request, then bytes the server has not read when it is done: it drains them...
        client.sendall(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + b"x" * 64)
        assert client.recv(4096).startswith(b"HTTP/1.1 200")
        # ...and the client resets the connection (SO_LINGER 0: RST instead of FIN).
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert closed.wait(timeout=10)
