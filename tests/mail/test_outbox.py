"""Email through the outbox, against a real SMTP server on a loopback port."""

from __future__ import annotations

import re
import threading

import pytest
from sqlalchemy import func, select

from portal import mail
from portal.extensions import db
from portal.models import AuditEvent, Invitation, OutboxMessage, User

from ..conftest import numbers_in, path_of, sign_in, submit
from ..helpers import future_input, invitation_flow_id
from ..mailserver import drop, link_in, make_mail_app, smtp, text_of  # noqa: F401 (fixture)


@pytest.fixture
def app(tmp_path, smtp):  # noqa: F811 (the conftest fixtures use this mail-enabled app)
    app = make_mail_app(tmp_path, smtp)
    yield app
    drop(app)




def _invite(client, **fields):
    data = {"kind": "recipients", "flow": invitation_flow_id(client), "expires": future_input(7), **fields}
    response = submit(client, "/admin/invitations/new", data, follow_redirects=False)
    response.close()  # the WSGI server closes the response: delivery runs after it
    return response


def test_invitation_email_arrives_and_its_link_enrolls(app, client, auth, admin, smtp):  # noqa: F811
    auth.login()
    response = _invite(client, to="Nia@Example.com", cc="boss@example.com",
                       bcc="records@example.com", message="Welcome to the lab!")
    assert response.status_code == 302
    [(recipients, message)] = smtp.messages
    assert sorted(recipients) == ["Nia@example.com", "boss@example.com", "records@example.com"]
    assert message["To"] == "Nia@example.com" and message["Cc"] == "boss@example.com"
    assert "Bcc" not in message
    assert message["Subject"] == "Ada Admin invited you to Invitation portal"
    body = text_of(message)
    assert "Ada Admin (admin@example.com) invited you" in body
    assert "Welcome to the lab!" in body
    assert numbers_in(body, "The invitation expires in {} days") == 7  # chosen: 7 days from now
    assert message.get_body(preferencelist=("html",)) is not None

    detail = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "badge-mail-sent" in detail

    invitee = app.test_client()
    page = invitee.get(path_of(link_in(message)), follow_redirects=True)
    assert numbers_in(page.get_data(as_text=True), "Step {} of {}") == (1, 2)
    page = submit(invitee, "/if/flow/default-enrollment-flow/", {
        "username": "nia", "password": "violet-kettle-harbour-42",
        "password_repeat": "violet-kettle-harbour-42"})
    html = page.get_data(as_text=True)
    assert 'value="Nia@example.com"' in html and "readonly" in html  # pre-filled and locked
    done = submit(invitee, "/if/flow/default-enrollment-flow/",
                  {"name": "Nia", "email": "someone-else@example.com"})  # ignored: locked
    assert done.request.path == "/account/"
    with app.app_context():
        user = db.session.scalar(select(User).filter_by(username="nia"))
        assert user.email == "Nia@example.com"
        actions = set(db.session.scalars(select(AuditEvent.action)))
        assert {"invitation.created", "invitation.sent", "invitation.used", "user.created"} <= actions


def test_email_waits_while_the_server_is_down_then_goes_once(app, client, auth, admin, smtp, runner):  # noqa: F811
    smtp.stop()
    auth.login()
    response = _invite(client, to="late@example.com")
    assert response.status_code == 302  # the admin's page did not fail
    with app.app_context():
        row = db.session.scalar(select(OutboxMessage))
        assert row.status == "queued" and row.attempts == 1 and row.last_error
    detail = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "badge-mail-queued" in detail and "next try" in detail

    smtp.start()
    result = runner.invoke(args=["outbox", "send"])
    assert numbers_in(result.output, "{} sent") == 1, result.output
    assert [r for r, _ in smtp.messages] == [["late@example.com"]]
    assert numbers_in(runner.invoke(args=["outbox", "send"]).output, "{} sent") == 0  # not sent twice
    with app.app_context():
        row = db.session.scalar(select(OutboxMessage))
        assert row.status == "sent" and row.attempts == 2 and row.sent_at is not None


def test_gives_up_after_the_last_attempt(tmp_path, smtp):  # noqa: F811
    app = make_mail_app(tmp_path, smtp, OUTBOX_MAX_ATTEMPTS=2)
    smtp.stop()
    with app.app_context():
        mail.enqueue("x@example.com", "Hello", "Body")
        db.session.commit()
        assert mail.deliver(due_only=False).retrying
        assert mail.deliver(due_only=True).retrying == []  # backing off: not due yet
        assert mail.deliver(due_only=False).failed
        row = db.session.scalar(select(OutboxMessage))
        assert row.status == "failed" and row.attempts == 2
        failures = db.session.scalars(select(AuditEvent).filter_by(action="email.send_failed")).all()
        assert len(failures) == 2 and failures[-1].detail["final"] is True
    drop(app)


def test_two_senders_deliver_each_email_exactly_once(tmp_path, smtp):  # noqa: F811
    app = make_mail_app(tmp_path, smtp)
    count = 40
    with app.app_context():
        for number in range(count):
            mail.enqueue(f"p{number}@example.com", f"Message {number}", "Body")
        db.session.commit()
    barrier = threading.Barrier(2)
    reports = []

    def sender():
        with app.app_context():  # each thread has its own database session
            barrier.wait()
            reports.append(mail.deliver(due_only=False, limit=count))
            db.session.remove()

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    subjects = sorted(message["Subject"] for _, message in smtp.messages)
    assert subjects == sorted(f"Message {n}" for n in range(count))  # each exactly once
    assert sum(len(r.sent) for r in reports) == count
    with app.app_context():
        assert db.session.scalar(
            select(func.count()).select_from(OutboxMessage).filter_by(status="sent")) == count
    drop(app)


def test_resend_makes_a_new_link_and_the_old_one_stops(app, client, auth, admin, smtp):  # noqa: F811
    auth.login()
    response = _invite(client, to="again@example.com")
    first_link = link_in(smtp.messages[0][1])
    detail_url = response.headers["Location"]
    invitation_id = int(detail_url.rstrip("/").split("/")[-1])
    page = submit(client, f"/admin/invitations/{invitation_id}/resend",
                  {"expires": "2099-01-01T10:00"}, follow_redirects=False)
    page.close()
    assert len(smtp.messages) == 2
    second_link = link_in(smtp.messages[1][1])
    assert second_link != first_link
    assert "2099-01-01 10:00 UTC" in text_of(smtp.messages[1][1])
    refused = app.test_client().get(path_of(first_link), follow_redirects=True)
    assert refused.status_code == 404
    works = app.test_client().get(path_of(second_link), follow_redirects=True)
    assert numbers_in(works.get_data(as_text=True), "Step {} of {}") == (1, 2)
    with app.app_context():
        assert db.session.get(Invitation, invitation_id).expires_at.year == 2099
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)
                                 .filter_by(action="invitation.resent")) == 1


def test_create_user_directly_emails_a_set_password_link(app, client, auth, admin, smtp):  # noqa: F811
    auth.login()
    with app.app_context():
        from portal.models import Group

        db.session.add(Group(name="staff", attributes={}))
        db.session.commit()
        staff_id = db.session.scalar(select(Group.id))
    response = submit(client, "/admin/users/new", {
        "username": "direct", "name": "Dee Rect", "email": "dee@example.com", "groups": str(staff_id),
    }, follow_redirects=False)
    response.close()
    [(recipients, message)] = smtp.messages
    assert recipients == ["dee@example.com"] and "set your password" in message["Subject"]
    link = re.search(r"http://portal\.test(/auth/set-password\?token=\S+)", text_of(message)).group(1)
    invitee = app.test_client()
    done = submit(invitee, link, {"password": "violet-kettle-harbour-42",
                                  "password_repeat": "violet-kettle-harbour-42"})
    assert "Your password is set" in done.get_data(as_text=True)
    again = invitee.get(link)
    assert again.status_code == 404  # the link works once
    with app.app_context():
        user = db.session.scalar(select(User).filter_by(username="direct"))
        assert [g.name for g in user.groups] == ["staff"] and user.password_hash


def test_without_a_mail_server_the_admin_gets_the_link(tmp_path):
    from ..conftest import TEST_PASSWORD
    from ..mailserver import SmtpServer

    app = make_mail_app(tmp_path, SmtpServer(), MAIL_SERVER="")
    with app.app_context():
        from portal.auth.service import create_user

        create_user(username="admin", email="a@example.com", password=TEST_PASSWORD,
                    name="Ada Admin", superuser=True)
    client = app.test_client()
    sign_in(client, "admin", TEST_PASSWORD)
    assert "No mail server is configured" in client.get("/admin/invitations/new").get_data(as_text=True)
    page = submit(client, "/admin/invitations/new", {"kind": "recipients", "to": "hand@example.com",
                                                     "flow": invitation_flow_id(client),
                                                     "expires": future_input()})
    html = page.get_data(as_text=True)
    assert "No mail server is configured" in html and "itoken=" in html
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
    drop(app)


def test_big_batches_are_left_to_the_sender_and_old_mail_is_purged(tmp_path, smtp):  # noqa: F811
    from datetime import timedelta

    from ..conftest import TEST_PASSWORD

    app = make_mail_app(tmp_path, smtp, OUTBOX_AFTER_RESPONSE_LIMIT=2)
    with app.app_context():
        from portal.auth.service import create_user

        create_user(username="admin", email="a@example.com", password=TEST_PASSWORD, superuser=True)
    client = app.test_client()
    sign_in(client, "admin", TEST_PASSWORD)
    page = submit(client, "/admin/invitations/new", {
        "kind": "recipients", "to": "a1@example.com, a2@example.com, a3@example.com",
        "flow": invitation_flow_id(client), "expires": future_input()})
    assert numbers_in(page.get_data(as_text=True),
                      "{} emails are queued; the outbox sender delivers them") == 3
    assert smtp.messages == []
    cli = app.test_cli_runner()
    assert numbers_in(cli.invoke(args=["outbox", "send"]).output, "{} sent") == 3
    with app.app_context():
        for row in db.session.scalars(select(OutboxMessage)):
            row.created_at = row.created_at - timedelta(days=40)
        mail.enqueue("fresh@example.com", "Fresh", "Body")
        db.session.commit()
    purged = cli.invoke(args=["outbox", "purge", "--older-than", "P30D"]).output
    assert numbers_in(purged, "Deleted {} email(s)") == 3
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 1
    drop(app)


def test_withdrawn_links_are_not_emailed(app, client, auth, admin, smtp):  # noqa: F811
    """Revoke, delete or resend before the email went out: the old link is never sent."""
    smtp.stop()
    auth.login()
    ids = []
    for name in ("revoke-me", "delete-me", "resend-me"):
        response = _invite(client, to=f"{name}@example.com")
        ids.append(int(response.headers["Location"].rstrip("/").split("/")[-1]))
    revoke_id, delete_id, resend_id = ids
    detail = f"/admin/invitations/{revoke_id}"
    submit(client, f"{detail}/revoke", {}, page_url=detail)
    submit(client, f"/admin/invitations/{delete_id}/delete", {})
    submit(client, f"/admin/invitations/{resend_id}/resend", {"expires": future_input(3)},
           follow_redirects=False).close()
    smtp.start()
    app.test_cli_runner().invoke(args=["outbox", "send"])
    assert [r for r, _ in smtp.messages] == [["resend-me@example.com"]]  # the new link only
    with app.app_context():
        statuses = sorted(db.session.scalars(select(OutboxMessage.status)))
        assert statuses == ["cancelled", "cancelled", "cancelled", "sent"]
    page = client.get(f"/admin/invitations/{resend_id}").get_data(as_text=True)
    assert "badge-mail-cancelled" in page and "badge-mail-sent" in page


def test_the_production_sender_loop_delivers_and_keeps_going(tmp_path, smtp):  # noqa: F811
    app = make_mail_app(tmp_path, smtp)
    passes = []
    with app.app_context():
        mail.enqueue("loop@example.com", "From the loop", "Body")
        db.session.commit()
        mail.run_forever(0, stop=lambda: passes.append(1) or len(passes) > 2)
        assert db.session.scalar(select(OutboxMessage.status)) == "sent"
    assert [m["Subject"] for _, m in smtp.messages] == ["From the loop"]
    drop(app)
