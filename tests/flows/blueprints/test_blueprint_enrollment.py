"""Imported authentik flows, completed end to end through the wizard with an invitation."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.flows.blueprints import import_blueprint
from portal.invitations import service
from portal.models import Invitation, User

from ...blueprint_helpers import OPERATOR, blueprint_text, empty_database, needs_blueprints
from ...conftest import numbers_in, path_of, submit
from ...mailserver import smtp  # noqa: F401 (fixture)

PASSWORD = "amber-lantern-meadow-73"
pytestmark = needs_blueprints


def _import(app, name: str) -> None:
    with app.app_context():
        empty_database()
        report = import_blueprint(blueprint_text(name), actor=OPERATOR)
        assert report.ok, report.errors


def _link(app, invitation_name: str) -> str:
    with app.app_context():
        invitation = db.session.scalar(select(Invitation).filter_by(name=invitation_name))
        return path_of(service.invitation_link(invitation, "http://portal.test"))


def enroll(client, link: str, slug: str, *, username: str, name: str, email: str, title: str = ""):
    """Open the link and fill in both pages, as an invitee does; returns the last response."""
    page = client.get(link, follow_redirects=True).get_data(as_text=True)
    assert numbers_in(page, "Step {} of {}") == (1, 2), page
    assert title in page
    page = submit(client, f"/if/flow/{slug}/", {
        "username": username, "password": PASSWORD, "password_repeat": PASSWORD,
    }).get_data(as_text=True)
    assert numbers_in(page, "Step {} of {}") == (2, 2), page
    return submit(client, f"/if/flow/{slug}/", {"name": name, "email": email})


def _user(app, username: str) -> dict:
    with app.app_context():
        user = db.session.scalar(select(User).filter_by(username=username))
        assert user is not None, f"{username} was not created"
        return {"type": user.type, "path": user.path, "groups": [g.name for g in user.groups],
                "attributes": user.attributes, "name": user.name, "email": user.email,
                "active": user.active}


def test_engineering_invitation_makes_an_internal_engineer(app, client):
    _import(app, "flows-invitation-enrollment.yaml")
    link = _link(app, "example-engineering-team-invitation")
    done = enroll(client, link, "invitation-enrollment-flow-internal-engineering", username="eng1",
                  name="Erin Engineer", email="erin@example.com", title="Welcome to the Engineering Team!")
    assert done.request.path == "/account/"
    assert "Welcome, Erin Engineer!" in done.get_data(as_text=True)
    assert _user(app, "eng1") == {
        "type": "internal", "path": "users/internal/engineering", "groups": ["engineering-team"],
        "attributes": {"department": "Engineering"}, "name": "Erin Engineer",
        "email": "erin@example.com", "active": True,
    }
    # The invitation is not single use: a colleague can enroll with it too.
    done = enroll(app.test_client(), link, "invitation-enrollment-flow-internal-engineering",
                  username="eng2", name="Eli", email="eli@example.com")
    assert done.request.path == "/account/"
    with app.app_context():
        assert db.session.scalar(select(Invitation).filter_by(
            name="example-engineering-team-invitation")).use_count == 2


@pytest.mark.parametrize(("invitation", "slug", "typed", "expected"), [
    ("example-external-basic-invitation", "invitation-enrollment-flow-external",
     {"name": "Pat Partner", "email": "pat@example.org"},
     {"type": "external", "path": "users/external", "groups": [], "attributes": {},
      "name": "Pat Partner", "email": "pat@example.org", "active": True}),
    ("example-external-prefilled-email-invitation", "invitation-enrollment-flow-external",
     {"name": "Ext Ernal", "email": "changed@evil.example"},
     {"type": "external", "path": "users/external", "groups": [], "attributes": {},
      "name": "Ext Ernal", "email": "external@example.com", "active": True}),
    ("example-internal-prefilled-invitation", "invitation-enrollment-flow-internal",
     {"name": "Someone Else", "email": "other@example.com"},
     {"type": "internal", "path": "users/internal", "groups": [], "attributes": {},
      "name": "Jane Smith", "email": "jane.smith@company.com", "active": True}),
    ("example-internal-department-invitation", "invitation-enrollment-flow-internal",
     {"name": "Dee Partment", "email": "dee@example.com"},
     {"type": "internal", "path": "users/internal", "groups": [],
      "attributes": {"department": "Engineering", "team": "Backend"},
      "name": "Dee Partment", "email": "dee@example.com", "active": True}),
])
def test_each_invitation_of_the_example_enrolls(app, client, invitation, slug, typed, expected):
    _import(app, "flows-invitation-enrollment.yaml")
    done = enroll(client, _link(app, invitation), slug, username="invitee", **typed)
    assert done.request.path == "/account/"
    assert _user(app, "invitee") == expected
    with app.app_context():
        used = db.session.scalar(select(Invitation).filter_by(name=invitation))
        assert used.use_count == 1 and [u.user.username for u in used.uses] == ["invitee"]


def test_single_use_example_invitation_is_refused_the_second_time(app, client):
    _import(app, "flows-invitation-enrollment.yaml")
    link = _link(app, "example-external-prefilled-email-invitation")
    enroll(client, link, "invitation-enrollment-flow-external", username="first", name="First",
           email="x@example.com")
    again = app.test_client().get(link, follow_redirects=True)
    assert again.status_code == 410
    assert "already been used" in again.get_data(as_text=True)


def test_invitation_flows_refuse_visitors_without_an_invitation(app, client):
    _import(app, "flows-invitation-enrollment.yaml")
    response = client.get("/if/flow/invitation-enrollment-flow-internal-engineering/")
    assert response.status_code == 403
    assert "An invitation is required" in response.get_data(as_text=True)


@pytest.mark.parametrize("name", ["flows-enrollment-2-stage.yaml",
                                  "flows-enrollment-2-stage-prompt_type.yaml"])
def test_two_stage_example_enrolls_with_an_invitation(app, client, make_invitation, name):
    _import(app, name)
    # authentik's 2-stage flow has no invitation stage, so (as in authentik) the invitation's
    # attributes are not applied; the use is still counted.
    invitation_id, link = make_invitation(attributes={"team": "blue"})
    done = enroll(client, path_of(link), "default-enrollment-flow", username="twostep",
                  name="Two Step", email="two@example.com", title="Welcome to authentik!")
    assert done.request.path == "/account/"
    assert _user(app, "twostep") == {
        "type": "internal", "path": "users", "groups": [], "attributes": {}, "name": "Two Step",
        "email": "two@example.com", "active": True,
    }
    with app.app_context():
        assert db.session.get(Invitation, invitation_id).use_count == 1


def test_email_verification_flow_activates_the_account(tmp_path, smtp):  # noqa: F811 (fixture)
    """authentik's enrollment-with-email-verification: the user is written inactive, the
    emailed link (through the outbox, to a real SMTP server) activates and signs them in."""
    from datetime import timedelta

    from portal.models import Flow, utcnow

    from ...mailserver import drop, make_mail_app, text_of

    app = make_mail_app(tmp_path, smtp)
    try:
        _import(app, "flows-enrollment-email-verification.yaml")
        with app.app_context():
            flow = db.session.scalar(select(Flow).filter_by(slug="default-enrollment-flow"))
            invitation = service.create_invitation(
                name="verify-me", flow=flow, expires_at=utcnow() + timedelta(days=1), single_use=True)
            link = path_of(service.invitation_link(invitation, "http://portal.test"))
        client = app.test_client()
        url = "/if/flow/default-enrollment-flow/"
        first = client.get(link, follow_redirects=True).get_data(as_text=True)
        assert numbers_in(first, "Step {} of {}") == (1, 3)
        submit(client, url, {"username": "vera", "password": PASSWORD, "password_repeat": PASSWORD})
        page = submit(client, url, {"name": "Vera Verified", "email": "vera@example.com"})
        assert "Check your email" in page.get_data(as_text=True)
        assert _user(app, "vera")["active"] is False  # create_users_as_inactive: true

        [(recipients, message)] = smtp.messages
        assert recipients == ["vera@example.com"]
        verify = re.search(r"http://portal\.test(/\S+/stage/\d+/verify\?token=\S+)", text_of(message))
        for _ in range(2):  # opening the link (a mail scanner, a preview) uses nothing up
            assert "Confirm my address" in client.get(verify.group(1)).get_data(as_text=True)
        assert _user(app, "vera")["active"] is False
        done = submit(client, verify.group(1), {})  # the button's POST confirms
        assert done.request.path == "/account/"
        assert "Welcome, Vera Verified!" in done.get_data(as_text=True)
        assert _user(app, "vera")["active"] is True
        with app.app_context():
            assert db.session.get(Invitation, invitation.id).use_count == 1
    finally:
        drop(app)
