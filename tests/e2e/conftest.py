"""Browser tests: Debian's chromium, driven by Playwright, against a real server on loopback.

The server is werkzeug's, in a thread, on an ephemeral port of 127.0.0.1, serving the `app`
fixture (a fresh SQLite database, or PostgreSQL when TEST_DATABASE_URL is set). Playwright
never downloads a browser here: it launches the system's chromium.

Without chromium the tests are skipped and the run says so; with REQUIRE_BROWSER=1 (CI) they fail.
Set SCREENSHOT_DIR=docs/screenshots (`make screenshots`) to save the main pages as PNGs.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from ..conftest import TEST_PASSWORD
from ..helpers import NEW_PASSWORD

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
    "--disable-extensions",
]
VIEWPORT = {"width": 1100, "height": 720}
EXPECT_TIMEOUT_MS = 10_000  # generous: other work may share the two cores


def _browser_missing() -> str | None:
    if os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK):
        return None
    return f"chromium not found at {CHROMIUM}"


def _browser_required() -> bool:
    return os.environ.get("REQUIRE_BROWSER", "").strip().lower() in {"1", "true", "yes", "on"}


def pytest_collection_modifyitems(config, items):
    """Say once, up front, that the browser tests cannot run (or will fail in CI)."""
    missing = _browser_missing()
    if missing and any(item.get_closest_marker("e2e") for item in items):
        verdict = "they will FAIL (REQUIRE_BROWSER=1)" if _browser_required() else "skipping them"
        config.get_terminal_writer().line(f"\nbrowser tests: {missing}; {verdict}", yellow=True)


def pytest_terminal_summary(terminalreporter):
    missing = _browser_missing()
    if missing and not _browser_required():
        terminalreporter.write_line(
            f"Browser tests were SKIPPED: {missing} (install Debian's chromium package; "
            "REQUIRE_BROWSER=1 turns this into a failure).", yellow=True, bold=True,
        )


@pytest.fixture(scope="session")
def browser():
    """One headless chromium for the whole run; each test gets its own contexts."""
    missing = _browser_missing()
    if missing:
        if _browser_required():
            pytest.fail(f"{missing} and REQUIRE_BROWSER=1", pytrace=False)
        pytest.skip(missing)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


RESULT_KEY = "tests.live_server.result"


class _CloseOnce:
    """The app's response iterable, closed once however often the server asks."""

    def __init__(self, result):
        self._result = result
        self._closed = False

    def __iter__(self):
        return iter(self._result)

    def close(self):
        if not self._closed:
            self._closed = True
            if hasattr(self._result, "close"):
                self._result.close()


def _closable(app):
    """The app, with each response iterable kept in its environ for the handler below."""

    def serve(environ, start_response):
        environ[RESULT_KEY] = result = _CloseOnce(app(environ, start_response))
        return result

    return serve


class _LiveHandler(WSGIRequestHandler):
    """werkzeug's handler, quiet, and closing every response.

    After writing a response, werkzeug 3.1's handler drains the socket before it closes the
    response iterable (which runs the response's `call_on_close` work: the portal's mail
    delivery after the response). When the client resets the connection meanwhile (chromium
    does, after a POST answered with a redirect), the read raises ConnectionResetError, close()
    is skipped, and the handler only reports a dropped connection. Closing it here is what the
    WSGI spec asks of a server, and what gunicorn does."""

    def log_request(self, *args, **kwargs):
        """The access log would only add noise to failing-test output."""

    def connection_dropped(self, error, environ=None):
        result = (environ or {}).get(RESULT_KEY)
        if result is not None:
            result.close()


@pytest.fixture
def live_server(app):
    """The app on http://127.0.0.1:<ephemeral port>, served by werkzeug in a thread."""
    server = make_server("127.0.0.1", 0, _closable(app), threaded=True,
                         request_handler=_LiveHandler)
    base = f"http://127.0.0.1:{server.server_port}"
    # Answer to 127.0.0.1:<port>, not to portal.test, and build links to it: what production
    # does with BASE_URL set to the address people reach.
    app.config.update(SERVER_NAME=None, BASE_URL=base, TRUSTED_HOSTS=["127.0.0.1"])
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield base
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


@pytest.fixture
def new_context(browser, live_server):
    """Open a fresh browser context (its own cookies: a different person) on the live server."""
    contexts = []

    def make(**options):
        context = browser.new_context(base_url=live_server, viewport=VIEWPORT, locale="en-GB",
                                      timezone_id="UTC", **options)
        context.set_default_timeout(EXPECT_TIMEOUT_MS)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_context):
    return new_context().new_page()


@pytest.fixture
def sign_in():
    """Sign in through the sign-in flow (who, then the password), as the admin fixture's user
    unless told otherwise."""

    def sign_in(page, login="admin", password=TEST_PASSWORD):
        page.goto("/auth/login")
        page.get_by_label("Username or email").fill(login)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()

    return sign_in


@pytest.fixture
def sign_up():
    """Walk the default enrollment flow's two pages (credentials, then name and email) on a page
    that shows its first one."""

    def sign_up(page, username, name, email, password=NEW_PASSWORD):
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password", exact=True).fill(password)
        page.get_by_label("Password (repeat)").fill(password)
        page.get_by_role("button", name="Continue").click()
        page.get_by_label("Name").fill(name)
        page.get_by_label("Email").fill(email)
        page.get_by_role("button", name="Finish").click()

    return sign_up


@pytest.fixture
def screenshot():
    """Save the page as docs/screenshots/<name>.png, only when SCREENSHOT_DIR is set."""
    target = os.environ.get("SCREENSHOT_DIR")

    def shoot(page, name: str):
        if not target:
            return
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / f"{name}.png"), full_page=True, animations="disabled",
                        caret="hide")

    return shoot


@pytest.fixture
def invitation_link(make_invitation, live_server):
    """Create an invitation through the service and return its link on the live server."""

    def make(**kwargs):
        _, link = make_invitation(**kwargs)
        return link.replace("http://portal.test", live_server, 1)

    return make
