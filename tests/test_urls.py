"""Absolute links come from BASE_URL only, and only BASE_URL's host is served.

The attack: an anonymous visitor sends `Host: evil.example`, and the portal emails a victim a
link to the attacker's host with the token in it. Each emailed link is checked twice: with the
host check on (the request is refused, nothing is sent) and with it off (the link is BASE_URL's
anyway), so neither defence depends on the other.
"""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Group, Invitation, OutboxMessage

from .conftest import TEST_PASSWORD, sign_in, submit
from .helpers import future_input, reach_email_stage
from .mailserver import drop, make_mail_app, smtp, text_of  # noqa: F401 (fixture)

HOSTILE = "evil.example"
LINK_RE = re.compile(r"https?://[^/\s]+/\S+")


class HostileClient(FlaskClient):
    """A browser whose every request says `Host: evil.example` (redirects included)."""

    def open(self, *args, **kwargs):
        kwargs.setdefault("base_url", f"http://{HOSTILE}")
        return super().open(*args, **kwargs)


def hostile_client(app, *, host_check: bool) -> FlaskClient:
    if not host_check:
        app.config["TRUSTED_HOSTS"] = None  # what the portal did before: any Host accepted
    return HostileClient(app, app.response_class, use_cookies=True)


def links_in(message) -> list[str]:
    links = LINK_RE.findall(text_of(message))
    assert links, text_of(message)
    return links


def assert_only_base_url_links(message, base_url: str) -> None:
    """Every link in the email points at BASE_URL; the hostile host appears nowhere."""
    for link in links_in(message):
        assert link.startswith(base_url + "/"), link
    assert HOSTILE not in message.as_string()


@pytest.fixture
def app(tmp_path, smtp):  # noqa: F811 (the conftest fixtures use this mail-enabled app)
    app = make_mail_app(tmp_path, smtp, BASE_URL="https://portal.example.com")
    yield app
    drop(app)


def _outbox(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(OutboxMessage))


def test_a_request_for_another_host_gets_the_400_page(app):
    for method in ("get", "post"):
        response = getattr(app.test_client(), method)("/auth/login", headers={"Host": HOSTILE})
        html = response.get_data(as_text=True)
        assert response.status_code == 400, method
        assert "Unknown address" in html and "Invitation portal" in html  # the portal's look
        assert "Traceback" not in html and "SecurityError" not in html
        assert response.headers["X-Frame-Options"] == "DENY"  # the usual headers too


def test_base_urls_host_is_served_on_any_port_and_nothing_else(app):
    assert app.config["TRUSTED_HOSTS"] == ["portal.example.com"]
    client = app.test_client()
    assert client.get("/livez", headers={"Host": "portal.example.com"}).status_code == 200
    assert client.get("/livez", headers={"Host": "portal.example.com:8443"}).status_code == 200
    for host in ("portal.example.com.evil.example", "sub.portal.example.com", "portal.test"):
        assert client.get("/livez", headers={"Host": host}).status_code == 400, host


def test_trusted_hosts_adds_names_to_serve(app_factory):
    app = app_factory(BASE_URL="https://portal.example.com", TRUSTED_HOSTS="Alias.example, other.example")
    assert app.config["TRUSTED_HOSTS"] == ["portal.example.com", "alias.example", "other.example"]
    client = app.test_client()
    assert client.get("/livez", headers={"Host": "alias.example"}).status_code == 200
    assert client.get("/livez", headers={"Host": HOSTILE}).status_code == 400


def _invite_by_email(client):
    from .helpers import invitation_flow_id

    response = submit(client, "/admin/invitations/new", {
        "kind": "recipients", "flow": invitation_flow_id(client), "expires": future_input(7),
        "to": "nia@example.com",
    }, follow_redirects=False)
    response.close()  # delivery runs when the server closes the response
    return response


def test_invitation_email_never_links_to_the_requests_host(app, admin, smtp):  # noqa: F811
    refused = hostile_client(app, host_check=True)
    assert refused.get("/auth/login").status_code == 400
    assert smtp.messages == [] and _outbox(app) == 0

    client = hostile_client(app, host_check=False)
    sign_in(client, "admin", TEST_PASSWORD)
    assert _invite_by_email(client).status_code == 302
    [(recipients, message)] = smtp.messages
    assert recipients == ["nia@example.com"]
    assert_only_base_url_links(message, "https://portal.example.com")
    # The invitation's page (the admin's copy button) shows the same BASE_URL link.
    with app.app_context():
        invitation_id = db.session.scalar(select(Invitation.id))
    page = client.get(f"/admin/invitations/{invitation_id}").get_data(as_text=True)
    assert "https://portal.example.com/if/flow/default-enrollment-flow/?itoken=" in page
    assert HOSTILE not in page


def test_set_password_email_never_links_to_the_requests_host(app, admin, smtp):  # noqa: F811
    client = hostile_client(app, host_check=False)
    sign_in(client, "admin", TEST_PASSWORD)
    with app.app_context():
        db.session.add(Group(name="staff", attributes={}))
        db.session.commit()
    response = submit(client, "/admin/users/new", {
        "username": "direct", "name": "Dee Rect", "email": "dee@example.com",
    }, follow_redirects=False)
    response.close()
    [(recipients, message)] = smtp.messages
    assert recipients == ["dee@example.com"]
    [link] = links_in(message)
    assert re.fullmatch(r"https://portal\.example\.com/auth/set-password\?token=\S+", link), link
    assert_only_base_url_links(message, "https://portal.example.com")


def test_verification_email_never_links_to_the_requests_host(mail_app, smtp):  # noqa: F811
    """The anonymous attack itself: a visitor walks the wizard and types the victim's address."""
    assert mail_app.config["BASE_URL"] == "http://portal.test"
    refused = hostile_client(mail_app, host_check=True)
    assert refused.get(mail_app.config["TEST_LINK"]).status_code == 400
    assert smtp.messages == []

    reach_email_stage(mail_app, hostile_client(mail_app, host_check=False))
    [(recipients, message)] = smtp.messages
    assert recipients == ["vera@example.com"]
    [link] = links_in(message)
    assert re.fullmatch(r"http://portal\.test/if/flow/default-enrollment-flow/stage/\d+/verify\?token=\S+",
                        link), link
    assert HOSTILE not in message.as_string()


def test_setup_link_uses_base_url(app):
    result = app.test_cli_runner().invoke(args=["setup-link"])
    assert result.exit_code == 0, result.output
    [link] = LINK_RE.findall(result.output)
    assert re.fullmatch(r"https://portal\.example\.com/auth/setup\?token=\S+", link), link
