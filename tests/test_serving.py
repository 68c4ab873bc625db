"""Serving in production: health probes, security headers, cookies, proxies, gunicorn's config."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select

from portal import create_app
from portal.auth import service as accounts
from portal.extensions import db
from portal.invitations import service
from portal.models import Flow

from .conftest import TEST_PASSWORD, path_of, sign_in
from .live import gunicorn

PAGES_TO_CHECK = ("/auth/login", "/admin/", "/admin/invitations/", "/admin/invitations/new",
                  "/admin/users/", "/account/")


def test_healthz_reports_a_database_that_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok"}
    assert "Set-Cookie" not in response.headers


def test_healthz_is_503_when_the_database_does_not_answer(tmp_path):
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/missing/dir/portal.db"})
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json == {"status": "unavailable", "database": "unavailable"}
    assert "missing" not in response.get_data(as_text=True)  # no internals
    with app.app_context():
        db.engine.dispose()


def test_every_page_carries_the_security_headers(client, auth, admin):
    auth.login()
    for path in PAGES_TO_CHECK:
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp, path
        assert "frame-ancestors 'none'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "same-origin"
        assert "Strict-Transport-Security" not in headers  # plain HTTP: HSTS means nothing


def test_pages_need_no_inline_script_or_style(client, auth, admin, make_invitation):
    """The CSP forbids inline code; a page that relied on it would break in the browser."""
    invitation_id, link = make_invitation()
    invitee = client.application.test_client()
    pages = [invitee.get(path_of(link), follow_redirects=True).get_data(as_text=True)]
    auth.login()
    for path in (*PAGES_TO_CHECK, f"/admin/invitations/{invitation_id}", "/no/such/page"):
        pages.append(client.get(path).get_data(as_text=True))
    for html in pages:
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>"
        assert not re.search(r"<style\b|\sstyle=", html), "inline style"
        assert not re.search(r"\son[a-z]+=", html), "inline event handler"


def test_flow_and_setup_pages_send_no_referrer(client, make_invitation):
    _, link = make_invitation()
    landing = client.get(path_of(link))
    assert landing.headers["Referrer-Policy"] == "no-referrer"
    assert landing.headers["Cache-Control"] == "no-store"
    page = client.get(landing.headers["Location"])  # the wizard itself, token out of the URL
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert client.get("/auth/setup?token=nope").headers["Referrer-Policy"] == "no-referrer"
    assert client.get("/if/flow/no-such-flow/?itoken=x").headers["Referrer-Policy"] == "no-referrer"


def _session_cookie(response) -> str:
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert cookies, "no session cookie set"
    return cookies[-1]


def test_session_cookie_is_httponly_lax_and_not_secure_over_http(client, admin):
    cookie = _session_cookie(sign_in(client, "admin", TEST_PASSWORD,
                                    follow_redirects=False))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie


def test_https_makes_the_cookie_secure_and_turns_on_hsts(client):
    response = client.get("/auth/login", base_url="https://portal.test", follow_redirects=True)
    assert "Secure" in _session_cookie(response)
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


@pytest.mark.parametrize("trusted,secure", [(1, True), (0, False)])
def test_forwarded_proto_is_believed_only_from_a_trusted_proxy(app_factory, trusted, secure):
    app = app_factory(TRUSTED_PROXIES=trusted)
    response = app.test_client().get(
        "/auth/login", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"})
    assert ("Secure" in _session_cookie(response)) is secure
    assert ("Strict-Transport-Security" in response.headers) is secure


@pytest.mark.parametrize("forwarded,status", [("portal.example.com", 200), ("evil.example", 400)])
def test_behind_a_proxy_the_forwarded_host_must_be_trusted_and_links_use_base_url(
        app_factory, forwarded, status):
    app = app_factory(TRUSTED_PROXIES=1, BASE_URL="https://portal.example.com")
    with app.app_context():
        accounts.create_user(username="admin", email="admin@example.com", password=TEST_PASSWORD,
                             superuser=True)
        flow = db.session.scalar(select(Flow))
        invitation_id = service.create_invitation(name="via proxy", flow=flow, expires_at=None).id
    client = app.test_client()  # to the app, Host is the proxy's name for it (portal.test)
    client.environ_base["HTTP_X_FORWARDED_HOST"] = "portal.example.com"
    sign_in(client, "admin", TEST_PASSWORD)
    response = client.get(f"/admin/invitations/{invitation_id}", headers={"X-Forwarded-Host": forwarded})
    assert response.status_code == status
    html = response.get_data(as_text=True)
    if status == 200:
        assert "https://portal.example.com/if/flow/default-enrollment-flow/?itoken=" in html
    assert "evil.example" not in html


def test_sign_in_starts_a_new_session(client, admin):
    client.get("/auth/login", follow_redirects=True)
    with client.session_transaction() as session:
        session["planted"] = "by someone else"
        before = dict(session)
    response = sign_in(client, "admin", TEST_PASSWORD,
                      follow_redirects=False)
    assert response.status_code == 302
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session["_user_id"]
        assert session.get("csrf_token") != before.get("csrf_token")


def test_gunicorn_prints_a_working_setup_link_while_no_admin_exists(app, tmp_path):
    log = tmp_path / "gunicorn.log"
    with gunicorn(app.config["SQLALCHEMY_DATABASE_URI"], workers=1, secret_key=app.config["SECRET_KEY"],
                  instance_path=tmp_path, log_path=log) as (base, _pid):
        link = re.search(r"(http://\S+/auth/setup\?token=\S+)", log.read_text())
        assert link, log.read_text()
        assert link.group(1).startswith(base)
        page = httpx.get(link.group(1))
        assert page.status_code == 200 and 'name="username"' in page.text
        assert page.headers["Referrer-Policy"] == "no-referrer"


def test_session_cookie_secure_setting_forces_secure(app_factory):
    response = app_factory(SESSION_COOKIE_SECURE=True).test_client().get("/auth/login",
                                                                           follow_redirects=True)
    assert "Secure" in _session_cookie(response)


def test_the_session_cookie_follows_a_rotated_secret_key(app, client, auth, admin):
    """The cookie's serializer is built once per set of keys: a rotated SECRET_KEY with the old
    one in SECRET_KEY_FALLBACKS keeps people signed in, and without it their cookie is void."""
    auth.login()
    assert client.get("/account/").status_code == 200
    old = app.secret_key
    app.config["SECRET_KEY"] = "a-new-secret-key-for-the-rotation-test-only"  # noqa: S105
    app.config["SECRET_KEY_FALLBACKS"] = [old]
    assert client.get("/account/").status_code == 200  # the old key still reads the cookie
    app.config["SECRET_KEY_FALLBACKS"] = []
    assert client.get("/account/").status_code == 302  # no key reads it: signed out
