"""portal.flows.stages.email without HTTP: the link goes through the outbox, problems travel
as notices on the Step."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from portal.extensions import db
from portal.models import ActionToken, OutboxMessage, utcnow

from ...flowkit import begin, make_flow


def _flow(app):
    make_flow(app, "mail", [{"type": "email", "name": "mail-stage",
                             "options": {"subject": "Confirm it", "token_expiry": "minutes=20"}}])


def test_reaching_the_stage_queues_one_message_with_the_link(app):
    _flow(app)
    with app.app_context():
        app.config["MAIL_SERVER"] = "127.0.0.1"
        wizard = begin("mail", prompt_data={"email": "vera@example.com"})
        step = wizard.step()
        assert step.kind == "page" and step.form.recipient == "vera@example.com"
        [message] = db.session.scalars(select(OutboxMessage)).all()
        assert (message.to, message.subject) == (["vera@example.com"], "Confirm it")
        # The link's token: one, for this flow session, living as long as the stage says.
        [token] = db.session.scalars(select(ActionToken)).all()
        assert token.flow_session_id == wizard.session.id
        assert abs(token.expires_at - utcnow() - timedelta(minutes=20)) < timedelta(seconds=30)
        assert wizard.ctx.outbox_ids == [message.id] and step.notices == []


def test_without_a_mail_server_the_problem_is_a_notice(app):
    _flow(app)
    with app.app_context():
        app.config["MAIL_SERVER"] = ""
        step = begin("mail", prompt_data={"email": "vera@example.com"}).step()
        assert step.kind == "page" and [c for c, _ in step.notices] == ["error"]
        assert db.session.scalars(select(OutboxMessage)).all() == []


def _token_in_outbox() -> str:
    import re

    from portal.mail.outbox import BODY_SEAL
    from portal.security.sealing import unseal

    message = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc())).first()
    return re.search(r"[?&]token=([\w-]+)", unseal(BODY_SEAL, message.body_text)).group(1)


def test_confirming_the_link_proves_the_written_accounts_address(app):
    """Email stage after user write: the account's address is verified (User.verified_email),
    which is what lets it accept invitations sent to that address."""
    from portal.auth.service import verified_email
    from portal.flows.stages.email import verify
    from portal.models import User

    make_flow(app, "signup", [
        {"type": "user_write", "name": "signup-write"},
        {"type": "email", "name": "signup-mail", "options": {"subject": "Confirm it"}},
    ])
    with app.app_context():
        app.config["MAIL_SERVER"] = "127.0.0.1"
        wizard = begin("signup", prompt_data={"username": "vera", "email": "Vera@example.com"})
        assert wizard.step().kind == "page"
        user = db.session.get(User, wizard.session.user_id)
        assert verified_email(user) is None  # not before the link is opened
        assert verify(_token_in_outbox()).ok
        assert verified_email(db.session.get(User, wizard.session.user_id)) == "Vera@example.com"


def test_an_address_confirmed_before_the_account_is_written_counts_for_it(app):
    from portal.auth.service import verified_email
    from portal.flows.stages.email import verify
    from portal.models import User

    make_flow(app, "confirm-first", [
        {"type": "email", "name": "first-mail", "options": {"subject": "Confirm it"}},
        {"type": "user_write", "name": "first-write"},
    ])
    with app.app_context():
        app.config["MAIL_SERVER"] = "127.0.0.1"
        wizard = begin("confirm-first", prompt_data={"username": "vera", "email": "vera@example.com"})
        assert wizard.step().kind == "page"
        assert verify(_token_in_outbox()).ok
        from ...flowkit import resume

        assert resume(wizard.session).step().kind == "done"
        assert verified_email(db.session.get(User, wizard.session.user_id)) == "vera@example.com"
