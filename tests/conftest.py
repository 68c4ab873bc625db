"""Fixtures in flaskr's style: a fresh database per test, CSRF on, helpers that act like a user.

Passwords are hashed with argon2id at a tiny cost in tests (the real parameters take about a
third of a second per hash or check, several times per test); `real_password_hashing` puts the
production hasher back for the tests that are about it.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from argon2 import PasswordHasher
from flask.testing import FlaskClient
from sqlalchemy import delete, insert, select, text

from portal import create_app
from portal.auth import service as accounts
from portal.extensions import db
from portal.flows.defaults import ensure_default_authentication_flow, ensure_default_enrollment_flow
from portal.security import passwords

TEST_PASSWORD = "a-long-and-unusual-passphrase"


def database_url(tmp_path) -> str:
    """SQLite always; PostgreSQL when TEST_DATABASE_URL is set."""
    return os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'test.db'}"


def _fresh_schema(app) -> None:
    with app.app_context():
        db.drop_all()
        db.create_all()
        ensure_default_enrollment_flow()
        ensure_default_authentication_flow()


def _drop_schema(app) -> None:
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


PRODUCTION_HASHER = passwords._hasher


DEFAULT_ADMIN = "/t/default/admin"


def _default_tenant_admin(open_):
    """FlaskClient.open, with the admin addresses of before tenants (/admin/...) taken as the
    default tenant's (/t/default/admin/...), which the portal redirects them to; so the
    hundreds of admin tests go on saying "/admin/users/" and mean a single-tenant install.
    tests/tenants/ checks the redirect itself (with the original open)."""

    def open(self, *args, **kwargs):
        if args and isinstance(args[0], str) and (args[0] == "/admin" or args[0].startswith("/admin/")):
            args = (DEFAULT_ADMIN + args[0].removeprefix("/admin"), *args[1:])
        return open_(self, *args, **kwargs)

    open.original = open_
    return open


@pytest.fixture(autouse=True, scope="session")
def tenant_admin_addresses():
    saved = FlaskClient.open
    FlaskClient.open = _default_tenant_admin(saved)  # every client class, subclasses too
    yield
    FlaskClient.open = saved


@pytest.fixture(autouse=True, scope="session")
def no_chance_cleanups():
    """The flow sessions' chance clean-up (one store in 32) off, so statement counts and the
    compared work of two paths do not vary between runs; tests/flows/test_executor.py turns it on."""
    from portal.flows import executor

    saved = executor.CLEANUP_ONE_IN
    executor.CLEANUP_ONE_IN = 0
    yield
    executor.CLEANUP_ONE_IN = saved


@pytest.fixture(autouse=True, scope="session")
def fast_password_hashing():
    """argon2id still (hashes look as in production), at the smallest cost it allows."""
    fast = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    saved = passwords._hasher, passwords._DUMMY_HASH
    passwords._hasher = fast
    passwords._DUMMY_HASH = fast.hash("timing-equaliser-not-a-password")
    yield
    passwords._hasher, passwords._DUMMY_HASH = saved


@pytest.fixture
def real_password_hashing(monkeypatch):
    """The production hasher (RFC 9106 parameters), for a test about hashing itself."""
    monkeypatch.setattr(passwords, "_hasher", PRODUCTION_HASHER)


def saved_rows(app) -> dict:
    """Every row of every table, to put back with restore_rows: a world built once per module
    is restored before each of its tests in milliseconds instead of being built again."""
    with app.app_context(), db.engine.connect() as connection:
        return {table.name: [row._asdict() for row in connection.execute(select(table))]
                for table in db.metadata.sorted_tables}


def restore_rows(app, saved: dict) -> None:
    """The database exactly as saved_rows found it (ids included; sequences follow). DELETE,
    not TRUNCATE: on PostgreSQL truncating thirty small tables takes half a second."""
    with app.app_context():
        db.session.remove()
        tables = db.metadata.sorted_tables
        with db.engine.begin() as connection:
            for table in reversed(tables):
                connection.execute(delete(table))
            for table in tables:
                if saved[table.name]:
                    connection.execute(insert(table), saved[table.name])
            if connection.dialect.name == "postgresql":  # SQLite takes max(id) + 1 by itself
                serial = [t for t in tables if "id" in t.c and t.c.id.primary_key]
                connection.execute(text("SELECT " + ", ".join(
                    f"setval(pg_get_serial_sequence('{t.name}', 'id'), "
                    + (f"{max(r['id'] for r in saved[t.name])}, true)" if saved[t.name]
                       else "1, false)")
                    for t in serial)))


@pytest.fixture
def app(request, tmp_path):
    """The testing app; a test may add settings with parametrize("app", [{...}], indirect=True)."""
    extra = getattr(request, "param", {})
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url(tmp_path), **extra})
    _fresh_schema(app)
    yield app
    _drop_schema(app)


@pytest.fixture
def app_factory(tmp_path):
    """An app with extra settings (rate limits on, a trusted proxy...) on a fresh test database."""
    made = []

    def make(**config):
        app = create_app({"SQLALCHEMY_DATABASE_URI": database_url(tmp_path), **config})
        _fresh_schema(app)
        made.append(app)
        return app

    yield make
    for app in made:
        _drop_schema(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF token"
    return match.group(1) or match.group(2)


def numbers_in(text: str, pattern: str):
    """The whole numbers written at the `{}` places of `pattern`, where it first occurs in `text`:
    an int for one place, a tuple for several, None when the words are not there at all.

    Numbers are compared whole, never as substrings: on a page that says "201 row(s) with a
    problem", numbers_in(page, "{} row(s) with a problem") is 201, so `== 1` fails as it should.
    """
    places = pattern.count("{}")
    assert places, "the pattern needs a {} where the number goes"
    regex = r"(?<!\d)(\d+)(?!\d)".join(re.escape(part) for part in pattern.split("{}"))
    match = re.search(regex, text)
    if match is None:
        return None
    found = tuple(int(value) for value in match.groups())
    return found[0] if places == 1 else found


def submit(client, url: str, data: dict, *, follow_redirects: bool = True, page_url: str | None = None):
    """GET the page, read its CSRF token, POST the form: what a browser does."""
    page = client.get(page_url or url)
    html = page.get_data(as_text=True)
    payload = {"csrf_token": csrf_from(html), **data}
    binding = re.search(r'name="binding" value="(\d+)"', html)
    if binding and "binding" not in data:
        payload["binding"] = binding.group(1)
    return client.post(url, data=payload, follow_redirects=follow_redirects)


SIGN_IN_FLOW = "/if/flow/default-authentication-flow/"


def sign_in(client, login="admin", password=TEST_PASSWORD, *, follow_redirects: bool = True,
            next: str | None = None):
    """Sign in as a browser does: /auth/login leads to the sign-in flow; its identification page
    takes the username or address, its password page the password. The answer of the last POST
    (or of the first, when the flow refuses to go on to a password page)."""
    start = client.get("/auth/login", query_string={"next": next} if next else None)
    location = start.headers.get("Location", "")
    if not location.split("?")[0].endswith(SIGN_IN_FLOW):
        return start  # signed in already, or refused before the flow
    parts = urlsplit(location)
    flow_url = parts.path + (f"?{parts.query}" if parts.query else "")
    first = submit(client, flow_url, {"login": login})
    if 'name="password"' not in first.get_data(as_text=True):
        return first
    return submit(client, SIGN_IN_FLOW, {"password": password}, follow_redirects=follow_redirects)


def sign_in_page(client) -> str:
    """The sign-in flow's first page, as /auth/login shows it (for its CSRF token)."""
    return client.get("/auth/login", follow_redirects=True).get_data(as_text=True)


class AuthActions:
    def __init__(self, client):
        self._client = client

    def login(self, login="admin", password=TEST_PASSWORD, **kwargs):
        return sign_in(self._client, login, password, **kwargs)

    def logout(self):
        return submit(self._client, "/auth/logout", {}, page_url="/account/")


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def admin(app):
    with app.app_context():
        user = accounts.create_user(username="admin", email="admin@example.com",
                                    password=TEST_PASSWORD, name="Ada Admin", superuser=True)
        return user.id


@pytest.fixture
def make_invitation(app, admin):
    """Create an invitation through the service (the admin form has its own tests)."""
    from sqlalchemy import select

    from portal.invitations import service
    from portal.models import Flow, User, utcnow

    def make(*, flow_slug="default-enrollment-flow", expires_in=timedelta(days=7), **kwargs):
        with app.app_context():
            flow = db.session.scalar(select(Flow).filter_by(slug=flow_slug))
            invitation = service.create_invitation(
                name=kwargs.pop("name", "test-invitation"), flow=flow,
                expires_at=utcnow() + expires_in, created_by=db.session.get(User, admin), **kwargs,
            )
            return invitation.id, service.invitation_link(invitation, "http://portal.test")

    return make


def path_of(link: str) -> str:
    return link.removeprefix("http://portal.test")


@pytest.fixture
def mail_app(tmp_path, smtp):
    """An app that sends to the test SMTP server, with rate limits on, and a verifying flow.

    `smtp` is the requesting module's SMTP server fixture (mailserver.smtp, or an Inbox)."""
    from sqlalchemy import select

    from portal.invitations import service
    from portal.models import FlowStageBinding, Stage, utcnow

    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url(tmp_path), "MAIL_SERVER": "127.0.0.1",
                      "MAIL_PORT": smtp.port, "MAIL_SUPPRESS_SEND": False,
                      "RATELIMIT_ENABLED": True, "MAIL_DEFAULT_SENDER": "portal@example.com"})
    with app.app_context():
        db.drop_all()
        db.create_all()
        ensure_default_authentication_flow()
        flow = ensure_default_enrollment_flow()
        writer = db.session.scalar(select(Stage).filter_by(name="default-enrollment-user-write"))
        writer.options = {**writer.options, "create_users_as_inactive": True}
        flow.bindings.append(FlowStageBinding(order=30, stage=Stage(
            name="verify", type="email", options={
                "subject": "Please confirm", "template": "email/account_confirmation.html",
                "token_expiry": "minutes=45", "activate_user_on_success": True,
                "use_global_settings": True})))
        db.session.commit()
        admin = accounts.create_user(username="admin", email="a@example.com", password=TEST_PASSWORD,
                                     superuser=True)
        invitation = service.create_invitation(name="x", flow=flow, expires_at=utcnow() + timedelta(days=1),
                                               created_by=admin)
        app.config["TEST_LINK"] = service.invitation_link(invitation, "http://portal.test")
    yield app
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


# -- SSO: a real OpenID provider (tests/oidc_provider.py) ----------------------------------------


@pytest.fixture(scope="session")
def oidc_provider():
    """panva's oidc-provider on a loopback port, once per test run (skipped without Node,
    unless REQUIRE_OIDC=1)."""
    from . import oidc_provider as op

    op.skip_or_fail_if_missing()
    provider = op.start()
    yield provider
    provider.stop()


@pytest.fixture
def sso_source(app, oidc_provider):
    """An OIDC source for that provider, through the service (the admin form has its own
    tests); its id. Shown on the sign-in page and offered to invitees."""
    from portal.sources import service

    from . import oidc_provider as op

    with app.app_context():
        source = service.save_source(None, {
            "name": "Test IdP", "slug": op.SLUG, "issuer": oidc_provider.issuer,
            "client_id": op.CLIENT_ID, "client_secret": op.CLIENT_SECRET,
            "scopes": "openid email profile groups", "claim_groups": "groups",
            "authoritative_fields": ["email", "name"],
        }, actor=None, ip=None)
        return source.id


def pytest_terminal_summary(terminalreporter):
    """Say plainly when the SSO tests could not run (and how to make them run)."""
    from . import oidc_provider as op

    reason = op.missing()
    if reason and not op.required():
        terminalreporter.write_line(
            f"SSO tests were SKIPPED: {reason}. `make test` runs `npm ci` in tests/oidc when "
            "npm is installed; REQUIRE_OIDC=1 turns this into a failure.", yellow=True,
            bold=True)
