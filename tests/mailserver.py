"""A real SMTP server for tests (aiosmtpd on a loopback port) and an app that sends to it."""

from __future__ import annotations

import re
import socket
import threading
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller

from portal import create_app
from portal.extensions import db
from portal.flows.defaults import ensure_default_enrollment_flow

from .conftest import database_url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Recorder:
    def __init__(self) -> None:
        self.received: list[tuple[list[str], object]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.received.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted"


class SmtpServer:
    """Start, stop and start again on the same port, like a mail server that goes down."""

    def __init__(self) -> None:
        self.port = free_port()
        self.recorder = _Recorder()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self):
        with self.recorder.lock:
            return list(self.recorder.received)


def text_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def link_in(message) -> str:
    return re.search(r"http://portal\.test/\S+", text_of(message)).group(0)


@pytest.fixture
def smtp():
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


def make_mail_app(tmp_path, smtp: SmtpServer, **config):
    app = create_app({
        "SQLALCHEMY_DATABASE_URI": database_url(tmp_path),
        "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": smtp.port, "MAIL_SUPPRESS_SEND": False,
        "MAIL_TIMEOUT": 5, "MAIL_DEFAULT_SENDER": "portal@example.com", **config,
    })
    with app.app_context():
        db.drop_all()
        db.create_all()
        ensure_default_enrollment_flow()
    return app


def drop(app) -> None:
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()
