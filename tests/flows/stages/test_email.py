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
