"""A real OpenID provider for the SSO tests: panva's oidc-provider (tests/oidc), run by Node on a
loopback port the OS chooses, and a small client that goes through its development login screen
the way a person would (login, password, then "Continue" on the consent screen).

Needs Node and `npm ci` in tests/oidc. Without them the tests that use the provider are skipped,
and say so; with REQUIRE_OIDC=1 (CI) they fail instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

HERE = Path(__file__).parent / "oidc"
CLIENT_ID, CLIENT_SECRET = "portal-test-client", "portal-test-client-secret-4b7e1c9a"
SLUG = "testidp"
REDIRECT_URIS = [f"http://portal.test/source/oidc/{SLUG}/callback",
                 f"http://127.0.0.1/source/oidc/{SLUG}/callback"]
ACCOUNTS = {
    "alice": {"email": "alice@example.com", "email_verified": True, "name": "Alice Liddell",
              "preferred_username": "alice", "groups": ["staff"]},
    "bob": {"email": "bob@example.com", "email_verified": True, "name": "Bob Builder",
            "preferred_username": "bob"},
    "mallory": {"email": "mallory@example.com", "email_verified": False, "name": "Mallory",
                "preferred_username": "mallory"},
    "carol": {"email": "carol@example.com", "email_verified": True, "name": "Carol Danvers",
              "preferred_username": "carol"},
}


def missing() -> str | None:
    """Why the provider cannot run here, or None."""
    if shutil.which("node") is None:
        return "Node.js is not installed (Debian's nodejs package)"
    if not (HERE / "node_modules" / "oidc-provider").is_dir():
        return "tests/oidc/node_modules is missing (run `npm ci` in tests/oidc)"
    return None


def required() -> bool:
    return os.environ.get("REQUIRE_OIDC", "").strip().lower() in {"1", "true", "yes", "on"}


def skip_or_fail_if_missing() -> None:
    reason = missing()
    if reason is None:
        return
    if required():
        pytest.fail(f"the OpenID provider cannot run: {reason} (REQUIRE_OIDC=1)")
    pytest.skip(f"the OpenID provider cannot run: {reason}")


@dataclass
class Provider:
    issuer: str
    process: subprocess.Popen
    output: list[str]
    readers: list[threading.Thread]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for reader in self.readers:
            reader.join(timeout=5)
        self.process.stdout.close()
        self.process.stderr.close()


def start(accounts: dict | None = None, *, code_ttl: int = 60,
          accounts_file: Path | None = None) -> Provider:
    """A provider of its own. `code_ttl`: how many seconds its authorization codes live.
    `accounts_file`: a JSON file of accounts it reads at each login (instead of `accounts`), so
    a test can change what the provider says about someone between two sign-ins."""
    config = {"clients": [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                           "redirect_uris": REDIRECT_URIS}],
              "accounts": accounts or ACCOUNTS, "code_ttl": code_ttl}
    if accounts_file is not None:
        config["accounts_file"] = str(accounts_file)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OIDC_TEST_CONFIG": json.dumps(config),
           "NODE_ENV": "test"}
    process = subprocess.Popen([shutil.which("node"), str(HERE / "server.js")], cwd=HERE, env=env,  # noqa: S603
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if not line.startswith("LISTENING "):
        process.kill()
        raise RuntimeError(f"oidc-provider did not start: {line!r} {process.stderr.read()!r}")
    output: list[str] = []
    readers = [threading.Thread(target=lambda s=stream: output.extend(s), daemon=True)
               for stream in (process.stdout, process.stderr)]  # the pipes never fill
    for reader in readers:
        reader.start()
    return Provider(line.split()[1].strip(), process, output, readers)


class _Forms(HTMLParser):
    """The forms of a page: (action, {name: value}) of each, hidden inputs and buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append((attrs.get("action", ""), {}))
        elif tag == "input" and self.forms and attrs.get("name"):
            self.forms[-1][1][attrs["name"]] = attrs.get("value", "")


def _forms(html: str) -> list[tuple[str, dict]]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


def log_in(authorization_url: str, login: str, *, consent: bool = True,
           stop_at: str = "http://portal.test") -> str:
    """Go through the provider's login and consent screens as `login`; return the redirect
    back to the portal (the URL with code and state, or with an error)."""
    browser = requests.Session()
    url = authorization_url
    for _ in range(20):
        if url.startswith(stop_at):
            return url
        response = browser.get(url, allow_redirects=False, timeout=10)
        if response.is_redirect:
            url = urljoin(url, response.headers["Location"])
            continue
        forms = _forms(response.text)
        if not forms:
            raise AssertionError(f"no form on the provider's page {url}: {response.text[:300]}")
        action, values = forms[0]
        if values.get("prompt") == "login":
            values.update(login=login, password="any password")  # noqa: S105 (dev screen)
        elif values.get("prompt") == "consent" and not consent:
            abort = [a for a in response.text.split('"') if "/abort" in a]
            url = urljoin(url, abort[0])
            continue
        response = browser.post(urljoin(url, action), data=values, allow_redirects=False,
                                timeout=10)
        url = urljoin(url, response.headers["Location"])
    raise AssertionError("the provider never sent the browser back")
