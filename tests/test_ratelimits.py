"""Rate limits (off in TestingConfig; switched on here with small numbers)."""

from __future__ import annotations

import os
import secrets

import pytest
from sqlalchemy import select

from portal import create_app
from portal.auth import service as accounts
from portal.extensions import db
from portal.invitations import service
from portal.models import Flow

from .conftest import TEST_PASSWORD, csrf_from, path_of, sign_in, submit

LIMITS = {
    "RATELIMIT_ENABLED": True,
    "RATELIMIT_SIGNIN_ACCOUNT": "3 per minute",
    "RATELIMIT_SIGNIN_ADDRESS": "5 per minute",
    "RATELIMIT_INVITATION_LOOKUP": "3 per minute",
    "RATELIMIT_WIZARD_SUBMIT": "2 per minute",
}
STRANGER, OWNER = "198.51.100.7", "203.0.113.20"


@pytest.fixture
def limited_app(app_factory):
    return _with_admin(app_factory(**LIMITS))


def _with_admin(app):
    with app.app_context():
        accounts.create_user(username="admin", email="admin@example.com", password=TEST_PASSWORD,
                             superuser=True)
    return app


def _client(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def _sign_in(client, login="admin", password=TEST_PASSWORD):
    return sign_in(client, login, password, follow_redirects=False)


def _assert_limited(response):
    html = response.get_data(as_text=True)
    assert response.status_code == 429
    assert "Too many requests" in html and "Invitation portal" in html  # the portal's error page
    assert 0 < int(response.headers["Retry-After"]) <= 300  # the longest window here


def test_failed_sign_ins_are_limited_per_account_and_address(limited_app):
    stranger = _client(limited_app, STRANGER)
    for _ in range(3):
        assert _sign_in(stranger, password="wrong-guess").status_code == 200
    _assert_limited(_sign_in(stranger, password="another-guess"))
    _assert_limited(_sign_in(stranger))  # even the right password, from this address
    # The stranger did not lock the owner out: from the owner's address it works.
    assert _sign_in(_client(limited_app, OWNER)).status_code == 302


def test_username_and_email_share_one_failure_budget(limited_app):
    """Alternating the account's username and address does not double the guesses: the
    budget (3 here) is the account's, whichever identifier names it."""
    stranger = _client(limited_app, STRANGER)
    for login in ("admin", "ADMIN@example.com", "Admin"):
        assert _sign_in(stranger, login=login, password="wrong-guess").status_code == 200
    _assert_limited(_sign_in(stranger, login="admin@example.com", password="another-guess"))
    # Another account's budget is its own (the address limit, 5, is not reached yet).
    with limited_app.app_context():
        accounts.create_user(username="sam", email="sam@example.com", password=TEST_PASSWORD)
    assert _sign_in(stranger, login="sam@example.com").status_code == 302


def test_a_password_page_cannot_name_its_own_budget(limited_app):
    """The password page checks the account named on the identification page; a `login` field
    added to its POSTs (a new value each time) must not draw on other accounts' budgets."""
    from .conftest import SIGN_IN_FLOW

    stranger = _client(limited_app, STRANGER)
    stranger.get("/auth/login")
    submit(stranger, SIGN_IN_FLOW, {"login": "admin"})  # now on the password page
    statuses = [submit(stranger, SIGN_IN_FLOW, {"password": "wrong-guess",
                                                "login": f"decoy{n}"}).status_code
                for n in range(4)]
    assert statuses == [200, 200, 200, 429], statuses  # the account's 3, not the address's 5


def test_failed_sign_ins_are_limited_per_address_across_accounts(limited_app):
    stranger = _client(limited_app, STRANGER)
    for n in range(5):
        assert _sign_in(stranger, login=f"someone{n}", password="guess").status_code == 200
    _assert_limited(_sign_in(stranger, login="someone-else", password="guess"))
    assert _sign_in(_client(limited_app, OWNER)).status_code == 302


def test_successful_sign_ins_do_not_count(limited_app):
    owner = _client(limited_app, OWNER)
    for _ in range(6):
        assert _sign_in(owner).status_code == 302
        submit(owner, "/auth/logout", {}, page_url="/account/")
    assert owner.get("/auth/login", follow_redirects=True).status_code == 200  # showing it never counts


def test_invitation_link_lookups_are_limited_per_address(limited_app):
    visitor = _client(limited_app, STRANGER)
    for _ in range(3):
        looked_up = visitor.get("/if/flow/default-enrollment-flow/?itoken=guess")
        assert looked_up.status_code == 404
        # The counts are not told on every page (each would cost a storage read); a 429 says
        # when to come back.
        assert not [name for name, _ in looked_up.headers.items() if name.startswith("X-RateLimit")]
    _assert_limited(visitor.get("/if/flow/default-enrollment-flow/?itoken=guess"))
    assert visitor.get("/if/flow/default-enrollment-flow/").status_code == 403  # no token: not a lookup
    assert _client(limited_app, OWNER).get(
        "/if/flow/default-enrollment-flow/?itoken=guess").status_code == 404


def test_wizard_submissions_are_limited(limited_app):
    with limited_app.app_context():
        flow = db.session.scalar(select(Flow))
        invitation = service.create_invitation(name="limited", flow=flow, expires_at=None)
        path = path_of(service.invitation_link(invitation, "http://portal.test"))
    visitor = _client(limited_app, STRANGER)
    page = visitor.get(path, follow_redirects=True)
    data = {"csrf_token": csrf_from(page.get_data(as_text=True)), "username": "x"}
    for _ in range(2):
        assert visitor.post("/if/flow/default-enrollment-flow/", data=data).status_code in (200, 302)
    _assert_limited(visitor.post("/if/flow/default-enrollment-flow/", data=data))


def test_email_resend_hook_limits_and_can_exempt(app_factory):
    from flask import request

    from portal import ratelimits

    app = app_factory(RATELIMIT_ENABLED=True, RATELIMIT_EMAIL_RESEND="1 per minute")

    @app.post("/test-resend")
    @ratelimits.email_resend(exempt_when=lambda: request.headers.get("X-Admin") == "yes")
    def resend():
        return "sent"

    app.config["WTF_CSRF_ENABLED"] = False  # a bare test endpoint without a form
    client = app.test_client()
    assert client.post("/test-resend").status_code == 200
    _assert_limited(client.post("/test-resend"))
    assert client.post("/test-resend", headers={"X-Admin": "yes"}).status_code == 200


@pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"),
                    reason="set TEST_REDIS_URL (CI does) to test shared counts in Redis")
def test_redis_storage_shares_counts_between_processes(app_factory):
    """Two app instances stand for two gunicorn workers: with Redis they share one count."""
    shared = {**LIMITS, "RATELIMIT_STORAGE_URI": os.environ["TEST_REDIS_URL"],
              "RATELIMIT_KEY_PREFIX": f"test-{secrets.token_hex(6)}", "RATELIMIT_SWALLOW_ERRORS": False}
    first = _with_admin(app_factory(**shared))
    second = create_app({"SQLALCHEMY_DATABASE_URI": first.config["SQLALCHEMY_DATABASE_URI"], **shared})
    for _ in range(3):
        assert _sign_in(_client(first, STRANGER), password="wrong-guess").status_code == 200
    _assert_limited(_sign_in(_client(second, STRANGER), password="wrong-guess"))
    with second.app_context():
        db.engine.dispose()
