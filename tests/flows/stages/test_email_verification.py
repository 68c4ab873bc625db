"""The email verification stage against a real SMTP server (aiosmtpd on a loopback port)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from portal import create_app
from portal.auth import service as accounts
from portal.extensions import db
from portal.flows.defaults import ensure_default_enrollment_flow
from portal.flows.stages.email import parse_expiry
from portal.invitations import service
from portal.mail import deliver
from portal.models import (
    ActionToken,
    Flow,
    FlowStageBinding,
    OutboxMessage,
    OutboxStatus,
    Stage,
    User,
    utcnow,
)

from ...conftest import (
    SIGN_IN_FLOW,
    TEST_PASSWORD,
    csrf_from,
    database_url,
    numbers_in,
    path_of,
    sign_in,
    sign_in_page,
    submit,
)
from ...helpers import ENROLLMENT_URL, Inbox, reach_email_stage


@pytest.fixture
def smtp():
    inbox = Inbox()
    inbox.start()
    yield inbox
    inbox.stop()






def user(app) -> User:
    with app.app_context():
        row = db.session.scalar(select(User).filter_by(username="verifier"))
        db.session.expunge(row)
        return row


def test_link_arrives_and_activates_the_account(mail_app, smtp):
    client = mail_app.test_client()
    page = reach_email_stage(mail_app, client).get_data(as_text=True)
    assert "Check your email" in page and "vera@example.com" in page
    assert numbers_in(page, "{} minutes") == 45
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert message["To"] == "vera@example.com" and message["Subject"] == "Please confirm"
    assert message["From"] == "portal@example.com"
    assert "Confirm my email address" in message.get_body(("html",)).get_content()
    assert user(mail_app).active is False
    # Reloading the waiting page sends nothing more.
    client.get(ENROLLMENT_URL)
    assert len(smtp.messages) == 1
    # Continue before opening the link: still waiting.
    waiting = submit(client, ENROLLMENT_URL, {}).get_data(as_text=True)
    assert "not seen the link opened yet" in waiting

    # The link, opened on another device: a mail scanner opens it first, then the person does.
    # Opening only asks; nothing is used up, however often.
    phone = mail_app.test_client()
    link = path_of(smtp.link())
    for _ in range(2):
        opened = phone.get(link)
        assert opened.status_code == 200
        shown = opened.get_data(as_text=True)
        assert "Confirm that <strong>vera@example.com</strong> is your address" in shown
        assert re.search(r'<button type="submit"[^>]*>Confirm my address</button>', shown)
    assert user(mail_app).active is False
    with mail_app.app_context():
        assert db.session.scalar(select(ActionToken)).used_at is None
    # The button's POST confirms the address and activates the account.
    confirmed = submit(phone, link, {})
    assert confirmed.status_code == 200
    assert "Your email address is confirmed" in confirmed.get_data(as_text=True)
    assert "Your account is now active" in confirmed.get_data(as_text=True)
    assert user(mail_app).active is True
    with mail_app.app_context():
        assert db.session.scalar(select(ActionToken)).used_at is not None
        assert smtp.link().split("token=")[1] not in str(db.session.scalars(select(ActionToken.digest)).all())
    # A second use is refused, opened or confirmed.
    again = phone.get(link)
    assert again.status_code == 410 and "already used" in again.get_data(as_text=True)
    assert phone.post(link, data={"csrf_token": csrf_from(shown)}).status_code == 410
    # Back in the first window, Continue (on the page still open there) finishes and signs in.
    done = client.post(ENROLLMENT_URL, data={"csrf_token": csrf_from(waiting), "binding": re.search(
        r'name="binding" value="(\d+)"', waiting).group(1)}, follow_redirects=True)
    assert done.request.path == "/account/" and "Welcome, Vera" in done.get_data(as_text=True)


def test_link_in_the_same_browser_continues_the_flow(mail_app, smtp):
    client = mail_app.test_client()
    reach_email_stage(mail_app, client)
    link = path_of(smtp.link())
    client.get(link)
    client.get(link)
    assert "Check your email" in client.get(ENROLLMENT_URL).get_data(as_text=True)  # still waiting
    assert user(mail_app).active is False
    done = submit(client, link, {})
    assert done.request.path == "/account/"
    assert user(mail_app).active is True


def test_confirming_needs_csrf(mail_app, smtp):
    client = mail_app.test_client()
    reach_email_stage(mail_app, client)
    link = path_of(smtp.link())
    assert client.post(link).status_code == 400
    assert user(mail_app).active is False
    with mail_app.app_context():
        assert db.session.scalar(select(ActionToken)).used_at is None
    assert submit(client, link, {}).request.path == "/account/"


def test_resend_waits_for_the_minimum_interval_and_replaces_the_link(mail_app, smtp):
    client = mail_app.test_client()
    reach_email_stage(mail_app, client)
    first = smtp.link()
    page = submit(client, "/if/flow/default-enrollment-flow/email/resend", {}, page_url=ENROLLMENT_URL)
    assert "Please wait" in page.get_data(as_text=True) and len(smtp.messages) == 1
    with mail_app.app_context():  # a minute later
        for token in db.session.scalars(select(ActionToken)):
            token.created_at -= timedelta(seconds=61)
        db.session.commit()
    page = submit(client, "/if/flow/default-enrollment-flow/email/resend", {}, page_url=ENROLLMENT_URL)
    assert "A new email is on its way to vera@example.com" in page.get_data(as_text=True)
    assert len(smtp.messages) == 2 and smtp.link() != first
    # The earlier link no longer works; the new one does.
    assert mail_app.test_client().get(path_of(first)).status_code == 410
    assert submit(mail_app.test_client(), path_of(first), {}, page_url=path_of(smtp.link())
                  ).status_code == 410
    assert mail_app.test_client().get(path_of(smtp.link())).status_code == 200
    assert "Your email address is confirmed" in submit(
        mail_app.test_client(), path_of(smtp.link()), {}).get_data(as_text=True)


def test_resend_is_rate_limited(mail_app, smtp):
    mail_app.config["EMAIL_RESEND_MIN_INTERVAL"] = 0
    mail_app.config["RATELIMIT_EMAIL_RESEND"] = "3 per 10 minutes"
    client = mail_app.test_client()
    reach_email_stage(mail_app, client)
    statuses = []
    for _ in range(4):
        response = submit(client, "/if/flow/default-enrollment-flow/email/resend", {},
                          page_url=ENROLLMENT_URL, follow_redirects=False)
        response.close()  # as a server does: queued mail goes out when the response is closed
        statuses.append(response.status_code)
    assert statuses[:3] == [302] * 3 and statuses[3] == 429
    assert len(smtp.messages) == 4  # the first email and three resends


def test_resend_needs_csrf(mail_app, smtp):
    client = mail_app.test_client()
    reach_email_stage(mail_app, client)
    assert client.post("/if/flow/default-enrollment-flow/email/resend").status_code == 400
    assert len(smtp.messages) == 1


def test_expired_link_is_refused(mail_app, smtp):
    client = mail_app.test_client()
    reach_email_stage(mail_app, client)
    with mail_app.app_context():
        token = db.session.scalar(select(ActionToken))
        token.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    response = mail_app.test_client().get(path_of(smtp.link()))
    assert response.status_code == 410 and "expired" in response.get_data(as_text=True)
    assert user(mail_app).active is False


@pytest.mark.parametrize("token", ["", "x" * 500, "not-a-token"])
def test_bad_tokens_are_refused(mail_app, token):
    client = mail_app.test_client()
    response = client.get(f"{ENROLLMENT_URL}verify-email?token={token}")
    assert response.status_code == 410
    response = submit(client, f"{ENROLLMENT_URL}verify-email?token={token}", {}, page_url=SIGN_IN_FLOW)
    assert response.status_code == 410


def test_smtp_down_queues_the_email_and_it_arrives_later(tmp_path):
    """The outbox keeps the message while the mail server is down; the page never fails."""
    inbox = Inbox()  # not started yet: the mail server is down
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url(tmp_path), "MAIL_SERVER": "127.0.0.1",
                      "MAIL_PORT": inbox.port, "MAIL_SUPPRESS_SEND": False, "MAIL_TIMEOUT": 5})
    with app.app_context():
        db.create_all()
        flow = ensure_default_enrollment_flow()
        flow.bindings.append(FlowStageBinding(order=30, stage=Stage(name="verify", type="email",
                                                                    options={})))
        db.session.commit()
        invitation = service.create_invitation(name="x", flow=flow, expires_at=utcnow() + timedelta(days=1))
        app.config["TEST_LINK"] = service.invitation_link(invitation, "http://portal.test")
    client = app.test_client()
    page = reach_email_stage(app, client)
    assert page.status_code == 200 and "Check your email" in page.get_data(as_text=True)
    with app.app_context():
        queued = db.session.scalar(select(OutboxMessage))
        assert queued.status == OutboxStatus.QUEUED and queued.attempts == 1 and queued.last_error
    inbox.start()
    try:
        with app.app_context():
            assert len(deliver(due_only=False).sent) == 1
        assert len(inbox.messages) == 1
        done = submit(client, path_of(inbox.link()), {})
        assert done.request.path == "/account/" and "Welcome, Vera" in done.get_data(as_text=True)
    finally:
        inbox.stop()
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


@pytest.mark.parametrize("value,minutes", [(30, 30), ("45", 45), ("minutes=30", 30),
                                           ("hours=1;minutes=30", 90), ("PT2H", 120), ("days=1", 1440)])
def test_token_expiry_formats(value, minutes):
    assert parse_expiry(value) == timedelta(minutes=minutes)


@pytest.mark.parametrize("value", ["", "soon", "minutes=-5", "P1M", "seconds=0", True, "years=1"])
def test_bad_token_expiry(value):
    with pytest.raises(ValueError):
        parse_expiry(value)


def test_flows_are_found_by_slug(mail_app):
    with mail_app.app_context():
        assert db.session.scalar(select(Flow).filter_by(slug="default-enrollment-flow"))


def test_a_deactivated_account_is_not_brought_back_by_its_old_links(mail_app, smtp):
    """The admin let the person in, then deactivated the account: the verification link sent
    before, and the flow still open in their browser, end with it."""
    client = mail_app.test_client()
    waiting = reach_email_stage(mail_app, client).get_data(as_text=True)
    link = path_of(smtp.link())
    with mail_app.app_context():
        admin = db.session.scalar(select(User).filter_by(username="admin"))
        person = db.session.scalar(select(User).filter_by(username="verifier"))
        accounts.set_active(person, True, actor=admin)
        accounts.set_active(person, False, actor=admin)
    phone = mail_app.test_client()
    opened = phone.get(link)
    assert opened.status_code == 410
    token = csrf_from(sign_in_page(phone))
    assert phone.post(link, data={"csrf_token": token}).status_code == 410
    assert user(mail_app).active is False
    # Continue in the first window: the flow is over, nobody is signed in.
    done = client.post(ENROLLMENT_URL, data={"csrf_token": csrf_from(waiting), "binding": re.search(
        r'name="binding" value="(\d+)"', waiting).group(1)}, follow_redirects=True)
    assert done.status_code == 400 and "Your sign-up session has ended" in done.get_data(as_text=True)
    assert client.get("/account/").status_code == 302


def test_a_set_password_link_dies_with_deactivation(app, client, admin):
    from portal.models import TokenPurpose

    with app.app_context():
        sam = accounts.create_user(username="sam", email="sam@example.com", password=TEST_PASSWORD)
        token = accounts.issue_action_token(TokenPurpose.SET_PASSWORD, timedelta(hours=1), user=sam)
        accounts.set_active(sam, False, actor=db.session.get(User, admin))
    page = client.get(f"/auth/set-password?token={token}")
    assert page.status_code == 404 and "This link is not valid" in page.get_data(as_text=True)
    with app.app_context():
        assert accounts.authenticate("sam", TEST_PASSWORD) is None


def test_send_again_checks_the_flows_sign_in_like_every_page(mail_app, smtp):
    """A flow for signed-in people: a copy of the cookie, once its sign-in has ended, cannot
    make the portal mail the address again."""
    from portal.models import FlowAuthentication

    from ...helpers import replaying_client

    with mail_app.app_context():
        flow = db.session.scalar(select(Flow).filter_by(slug="default-enrollment-flow"))
        flow.authentication = FlowAuthentication.REQUIRE_AUTHENTICATED
        db.session.commit()
    client = mail_app.test_client()
    sign_in(client, "admin", TEST_PASSWORD)
    assert "Check your email" in reach_email_stage(mail_app, client).get_data(as_text=True)
    assert len(smtp.messages) == 1
    thief = replaying_client(client)
    submit(client, "/auth/logout", {}, page_url="/account/")
    with mail_app.app_context():  # past the minimum interval
        for token in db.session.scalars(select(ActionToken)):
            token.created_at -= timedelta(seconds=61)
        db.session.commit()
    token = csrf_from(sign_in_page(thief))
    page = thief.post("/if/flow/default-enrollment-flow/email/resend", data={"csrf_token": token})
    assert page.status_code == 403 and "Sign in required" in page.get_data(as_text=True)
    assert len(smtp.messages) == 1


def test_send_again_is_the_stage_action_of_the_binding(mail_app, smtp):
    """The waiting page's "Send again" posts to the one stage-action route, for its binding."""
    mail_app.config["EMAIL_RESEND_MIN_INTERVAL"] = 0
    client = mail_app.test_client()
    reach_email_stage(mail_app, client)
    page = client.get(ENROLLMENT_URL).get_data(as_text=True)
    action = re.search(r'action="(/if/flow/default-enrollment-flow/stage/(\d+)/resend)"', page)
    assert action is not None, page
    sent = submit(client, action.group(1), {}, page_url=ENROLLMENT_URL).get_data(as_text=True)
    assert "A new email is on its way to vera@example.com" in sent and len(smtp.messages) == 2
    # The link in the email names the same binding.
    assert re.search(rf"/stage/{action.group(2)}/verify\?token=", smtp.link())
    # An action the stage does not declare does not exist.
    assert client.post(f"/if/flow/default-enrollment-flow/stage/{action.group(2)}/delete",
                       data={"csrf_token": csrf_from(page)}).status_code == 404


def test_links_of_earlier_releases_still_confirm(mail_app, smtp):
    """Emails already sent point at /if/flow/<slug>/verify-email?token=...: that still works."""
    client = mail_app.test_client()
    reach_email_stage(mail_app, client)
    token = re.search(r"\?token=(\S+)", smtp.link()).group(1)
    old = f"{ENROLLMENT_URL}verify-email?token={token}"
    assert "Confirm my address" in mail_app.test_client().get(old).get_data(as_text=True)
    assert submit(client, old, {}).request.path == "/account/"
    assert user(mail_app).active is True
