"""A real gunicorn server and HTTP clients that act like browsers: for the multi-process tests
and the benchmark (bench/)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')
BINDING_RE = re.compile(r'name="binding" value="(\d+)"')
PROCESS_ENVIRONMENT = {"PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ"}


def free_port() -> int:
    """A port the OS picks from its ephemeral range: two suites on one machine never probe the
    same short list, so they do not race each other for it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def gunicorn(database_url: str, *, workers: int, secret_key: str, instance_path: str | Path,
             extra_env: dict | None = None, log_path: str | Path | None = None):
    """Serve wsgi:app with gunicorn.conf.py on a loopback port; yields (base URL, master pid)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Only what a process needs to run: the portal's and gunicorn's settings come from here,
    # never from the shell that started the tests (an exported MAIL_SERVER would be mailed).
    env = {
        **{name: value for name, value in os.environ.items() if name in PROCESS_ENVIRONMENT},
        "BASE_URL": base,
        "DATABASE_URL": database_url,
        "SECRET_KEY": secret_key,
        "INSTANCE_PATH": str(instance_path),
        "PORTAL_ENV": "production",
        "WEB_CONCURRENCY": str(workers),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_ACCESS_LOG": "",
        "RATELIMIT_ENABLED": "false",
        **(extra_env or {}),
    }
    log = open(log_path or os.devnull, "w")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(  # noqa: S603 (our own interpreter and config)
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode}")
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not answer /healthz within 30 s")
            time.sleep(0.1)
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def form_fields(html: str) -> dict:
    """The hidden fields a browser would send back: the CSRF token and the wizard's binding."""
    match = CSRF_RE.search(html)
    if not match:
        raise AssertionError("page has no CSRF token")
    fields = {"csrf_token": match.group(1) or match.group(2)}
    binding = BINDING_RE.search(html)
    if binding:
        fields["binding"] = binding.group(1)
    return fields


class Invitee:
    """One person with their own browser (cookie jar) walking the default enrollment wizard."""

    def __init__(self, base: str, number: int, password: str) -> None:
        self.client = httpx.Client(base_url=base, follow_redirects=True, timeout=60)
        self.number = number
        self.password = password
        self.page: httpx.Response | None = None

    def open(self, link_path: str) -> httpx.Response:
        self.page = self.client.get(link_path)
        return self.page

    def send(self, data: dict) -> httpx.Response:
        """POST the current page's form with data, as a browser would."""
        assert self.page is not None
        self.page = self.client.post(str(self.page.url), data={**form_fields(self.page.text), **data})
        return self.page

    def first_step(self) -> httpx.Response:
        return self.send({"username": f"invitee{self.number}", "password": self.password,
                          "password_repeat": self.password})

    def last_step(self) -> httpx.Response:
        return self.send({"name": f"Invitee {self.number}", "email": f"invitee{self.number}@example.com"})

    def close(self) -> None:
        self.client.close()


class Member(Invitee):
    """Someone who already has an account: signs in through the sign-in flow, then accepts."""

    def sign_in(self, login: str) -> httpx.Response:
        self.page = self.client.get("/auth/login")  # -> the sign-in flow's first page
        self.send({"login": login})
        return self.send({"password": self.password})

    def accept(self) -> httpx.Response:
        """Press Accept on the acceptance page the invitation link led to."""
        return self.send({"decision": "accept"})
