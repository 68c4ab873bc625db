"""Fixes from review: stale links after a resend, verified addresses, outbox retries, bad input
that must never reach the database as a 500."""

from __future__ import annotations

from datetime import timedelta

import pytest
from markupsafe import escape
from sqlalchemy import func, select

from portal.extensions import db
from portal.invitations import service
from portal.models import Flow, FlowStageBinding, Group, Invitation, Stage, User, utcnow

from .blueprint_helpers import OPERATOR
from .conftest import (
    SIGN_IN_FLOW,
    TEST_PASSWORD,
    AuthActions,
    csrf_from,
    numbers_in,
    path_of,
    sign_in_page,
    submit,
)
from .helpers import NEW_PASSWORD, Inbox

FLOW = "/if/flow/default-enrollment-flow/"


def _users(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(User.id)))


def test_a_resent_invitation_stops_browsers_that_opened_the_old_link(app, client, auth, admin,
                                                                      make_invitation):
    invitation_id, old_link = make_invitation(single_use=True)
    opened, started = app.test_client(), app.test_client()
    assert opened.get(path_of(old_link)).status_code == 302  # only the cookie remembers the link
    first = started.get(path_of(old_link), follow_redirects=True).get_data(as_text=True)
    assert numbers_in(first, "Step {} of {}") == (1, 2)
    page = submit(started, FLOW, {"username": "early", "password": NEW_PASSWORD,
                                  "password_repeat": NEW_PASSWORD})
    assert numbers_in(page.get_data(as_text=True), "Step {} of {}") == (2, 2)
    users_before = _users(app)

    auth.login()
    page = submit(client, f"/admin/invitations/{invitation_id}/resend", {"expires": "2099-05-01T12:00"})
    assert "the old one no longer works" in page.get_data(as_text=True)

    refused = opened.get(FLOW)
    assert refused.status_code == 404 and "not valid" in refused.get_data(as_text=True)
    refused = submit(started, FLOW, {"name": "Early", "email": "early@example.com"})
    assert refused.status_code == 404 and "not valid" in refused.get_data(as_text=True)
    assert _users(app) == users_before
    with app.app_context():
        invitation = db.session.get(Invitation, invitation_id)
        assert invitation.use_count == 0
        new_link = service.invitation_link(invitation, "http://portal.test")

    fresh = app.test_client()
    first = fresh.get(path_of(new_link), follow_redirects=True).get_data(as_text=True)
    assert numbers_in(first, "Step {} of {}") == (1, 2)
    submit(fresh, FLOW, {"username": "late", "password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD})
    done = submit(fresh, FLOW, {"name": "Late", "email": "late@example.com"})
    assert "Your account is ready" in done.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(User).filter_by(username="late")) is not None
        assert db.session.get(Invitation, invitation_id).use_count == 1


@pytest.fixture
def inbox():
    server = Inbox()
    server.start()
    yield server
    server.stop()


def test_a_verification_holds_only_for_the_address_it_confirmed(app_factory, inbox):
    """Verify an address the invitation refuses, then switch to an allowed one: a new link."""
    app = app_factory(MAIL_SERVER="127.0.0.1", MAIL_PORT=inbox.port, MAIL_SUPPRESS_SEND=False,
                      MAIL_DEFAULT_SENDER="portal@example.com")
    with app.app_context():
        flow = db.session.scalar(select(Flow))
        flow.bindings.append(FlowStageBinding(order=15, stage=Stage(name="verify", type="email")))
        invitation = service.create_invitation(name="org only", flow=flow, allowed_domains=["example.org"],
                                               expires_at=utcnow() + timedelta(days=1))
        link = service.invitation_link(invitation, "http://portal.test")
    client = app.test_client()
    client.get(path_of(link))
    submit(client, FLOW, {"username": "mallory", "password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD})
    page = submit(client, FLOW, {"name": "Mallory", "email": "mallory@elsewhere.net"})
    assert "Check your email" in page.get_data(as_text=True)
    assert [m["To"] for m in inbox.messages] == ["mallory@elsewhere.net"]
    # Her own address, verified: the invitation refuses its domain and sends her back.
    page = submit(client, path_of(inbox.link()), {}).get_data(as_text=True)
    assert "accepts only addresses at example.org" in page

    page = submit(client, FLOW, {"name": "Mallory", "email": "Victim@Example.org"})
    assert "Check your email" in page.get_data(as_text=True)  # not an account
    assert _users(app) == 0
    assert "not seen the link opened yet" in submit(client, FLOW, {}).get_data(as_text=True)
    assert [m["To"] for m in inbox.messages] == ["mallory@elsewhere.net", "Victim@example.org"]

    done = submit(client, path_of(inbox.link()), {})
    assert "Your account is ready" in done.get_data(as_text=True)
    with app.app_context():
        mallory = db.session.scalar(select(User).filter_by(username="mallory"))
        assert mallory.email == "Victim@example.org"
        assert not [key for key in mallory.attributes if key.startswith("_portal.")]  # flow notes stay


def test_retry_sends_again_only_a_failed_email(app_factory, inbox):
    from portal.auth.service import create_user
    from portal.mail import deliver
    from portal.models import OutboxMessage, OutboxStatus


    app = app_factory(MAIL_SERVER="127.0.0.1", MAIL_PORT=inbox.port, MAIL_SUPPRESS_SEND=False,
                      MAIL_DEFAULT_SENDER="portal@example.com")
    with app.app_context():
        admin = create_user(username="admin", email="admin@example.com", password=TEST_PASSWORD,
                            superuser=True)
        invitations, emailed = service.invite_recipients(
            ["ines@example.com"], name="ines", base_url="http://portal.test", created_by=admin,
            flow=db.session.scalar(select(Flow)), expires_at=utcnow() + timedelta(days=1))
        assert emailed
        invitation_id = invitations[0].id
        message_id = db.session.scalar(select(OutboxMessage.id))
        assert deliver(ids=[message_id]).sent == [message_id]
    assert len(inbox.messages) == 1
    client = app.test_client()
    AuthActions(client).login()
    detail = f"/admin/invitations/{invitation_id}"

    def retry():
        token = csrf_from(client.get(detail).get_data(as_text=True))
        return client.post(f"{detail}/emails/{message_id}/retry", data={"csrf_token": token},
                           follow_redirects=True).get_data(as_text=True)

    page = retry()
    assert "Nothing was retried" in page and "this one is sent" in page
    with app.app_context():
        assert db.session.get(OutboxMessage, message_id).status == OutboxStatus.SENT
    assert len(inbox.messages) == 1  # never twice

    with app.app_context():
        db.session.get(OutboxMessage, message_id).status = OutboxStatus.FAILED
        db.session.commit()
    assert "The email is queued again" in retry()
    with app.app_context():
        assert db.session.get(OutboxMessage, message_id).status == OutboxStatus.SENT
    assert len(inbox.messages) == 2


@pytest.mark.parametrize("url", [
    "/if/flow/default%00-enrollment-flow/",
    "/if/flow/default%00-enrollment-flow/?itoken=abc",  # the link check ran before the NUL check
    "/if/flow/default-enrollment-flow/?itoken=a%00b",
    "/if/flow/default%00-enrollment-flow/verify-email?token=abc",
    "/if/flow/default-enrollment-flow/verify-email?token=a%00b",
])
def test_nul_in_a_slug_or_token_is_a_404_on_every_database(client, url):
    response = client.get(url)
    assert response.status_code == 404 and "<html" in response.get_data(as_text=True)


def test_nul_in_the_slug_of_a_resend_is_a_404(app, client, make_invitation):
    _, link = make_invitation()
    page = client.get(path_of(link), follow_redirects=True).get_data(as_text=True)
    response = client.post("/if/flow/default%00-enrollment-flow/email/resend",
                           data={"csrf_token": csrf_from(page)})
    assert response.status_code == 404


HUGE = "99999999999999999999"


@pytest.mark.parametrize("url", [
    f"/admin/invitations/{HUGE}", f"/admin/invitations/{2**63}", f"/admin/users/{HUGE}",
])
def test_a_huge_id_in_the_address_is_a_404(client, auth, admin, url):
    auth.login()
    assert client.get(url).status_code == 404


def test_a_huge_id_in_a_posted_address_is_a_404(client, auth, admin):
    auth.login()
    token = csrf_from(client.get("/admin/invitations/").get_data(as_text=True))
    response = client.post(f"/admin/invitations/{HUGE}/emails/{HUGE}/retry", data={"csrf_token": token})
    assert response.status_code == 404


@pytest.mark.parametrize("url", [
    f"/admin/invitations/?page={HUGE}", f"/admin/audit/?page={HUGE}", f"/admin/users/?page={HUGE}",
    f"/admin/invitations/?page=-{HUGE}", f"/admin/invitations/?flow={HUGE}&creator={HUGE}",
    f"/admin/invitations/new?from={HUGE}",
])
def test_huge_numbers_in_the_query_are_ignored_or_clamped(client, auth, admin, url):
    auth.login()
    assert client.get(url).status_code == 200


def test_a_huge_id_in_the_bulk_action_is_refused_with_a_message(app, client, auth, make_invitation):
    invitation_id, _ = make_invitation()
    auth.login()
    page = submit(client, "/admin/invitations/bulk-action",
                  {"action": "revoke", "ids": [str(invitation_id), HUGE]}, page_url="/admin/invitations/")
    assert page.status_code == 200 and "Select at least one invitation" in page.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Invitation, invitation_id).revoked_at is None


def test_a_value_the_database_refuses_is_a_400_never_a_500(app_factory):
    from sqlalchemy.exc import DataError

    app = app_factory()
    failures = {"overflow": OverflowError("Python int too large to convert to SQLite INTEGER"),
                "data": DataError("SELECT 1", {}, Exception("integer out of range"))}

    def fail(kind):
        raise failures[kind]

    app.add_url_rule("/test-only/<kind>", view_func=fail)
    for kind in failures:
        response = app.test_client().get(f"/test-only/{kind}")
        assert response.status_code == 400 and "out of range" in response.get_data(as_text=True)


ENTRY = "version: 1\nentries:\n  - model: authentik_core.group\n    identifiers: {name: team}\n"
MALFORMED = {
    "state": (ENTRY + "    state: [a]\n", "state: expected one of present, created, absent"),
    "find key": (ENTRY + "    attrs: {parent: !Find [authentik_core.group, [[a], b]]}\n",
                 "!Find authentik_core.group by ['a'] is not supported"),
    "find value": (ENTRY + "    attrs: {parent: !Find [authentik_core.group, [name, {b: c}]]}\n",
                   "!Find authentik_core.group by name: expected text or a number"),
    "nesting": (ENTRY + "    attrs: {attributes: {deep: " + "[" * 5000 + "]" * 5000 + "}}\n",
                "nested more than 64 deep"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_blueprint_is_reported_and_writes_nothing(app, case):
    from portal.flows.blueprints import import_blueprint

    text, reason = MALFORMED[case]
    with app.app_context():
        report = import_blueprint(text, actor=OPERATOR)
        assert not report.applied and any(reason in error for error in report.errors), report.errors
        assert db.session.scalar(select(func.count()).select_from(Group)) == 0


@pytest.mark.parametrize("case", MALFORMED)
def test_the_upload_page_rejects_a_malformed_blueprint_with_the_reason(app, client, auth, admin, case):
    from .helpers import upload_blueprint

    text, reason = MALFORMED[case]
    auth.login()
    response = upload_blueprint(client, content=text.encode())
    assert response.status_code == 422
    assert str(escape(reason)) in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Group)) == 0


@pytest.mark.parametrize("url", ["/admin/invitations/?q=a%00b", "/admin/users/?q=%00",
                                 "/admin/audit/?action=%00"])
def test_nul_in_any_query_value_is_a_400_not_a_500(client, auth, admin, url):
    auth.login()
    response = client.get(url)
    assert response.status_code == 400
    assert "Invalid characters" in response.get_data(as_text=True)


def test_nul_in_a_form_value_is_a_400(client):
    page = sign_in_page(client)
    response = client.post(SIGN_IN_FLOW, data={"csrf_token": csrf_from(page),
                                               "login": "ad\x00min", "password": "x"})
    assert response.status_code == 400
