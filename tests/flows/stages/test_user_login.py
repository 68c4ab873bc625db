"""portal.flows.stages.user_login without HTTP: it names the user the web layer signs in."""

from __future__ import annotations

from portal.auth import service as accounts
from portal.extensions import db

from ...conftest import TEST_PASSWORD
from ...flowkit import begin, make_flow


def test_user_login_names_the_written_user_and_refuses_without_one(app):
    make_flow(app, "login", [{"type": "user_login", "name": "login-stage"}])
    with app.app_context():
        step = begin("login").step()
        assert (step.kind, step.title, step.status) == ("denied", "Nothing to sign in", 400)
        sam = accounts.create_user(username="sam", email="sam@example.com", password=TEST_PASSWORD)
        wizard = begin("login")
        wizard.session.user_id = sam.id  # as user write leaves it: written, and the pending user
        wizard.ctx.set_pending_user(sam)
        db.session.commit()
        step = wizard.step()
        assert (step.kind, step.login_user_id, step.user_id) == ("done", sam.id, sam.id)
