"""portal.flows.context: the pending user, the one answer to "which account does this flow act
on" (user write's updates, user delete, consent's remembered acceptances)."""

from __future__ import annotations

from portal.auth import service as accounts
from portal.extensions import db

from ..conftest import TEST_PASSWORD
from ..flowkit import begin, make_flow


def test_the_pending_user_is_the_noted_account_else_the_signed_in_visitor(app):
    make_flow(app, "any", [{"type": "deny", "name": "any-deny"}])
    with app.app_context():
        sam = accounts.create_user(username="sam", email="sam@example.com", password=TEST_PASSWORD)
        kim = accounts.create_user(username="kim", email="kim@example.com", password=TEST_PASSWORD)
        assert begin("any").ctx.pending_user() is None
        wizard = begin("any", user=sam)
        assert wizard.ctx.pending_user() == sam
        wizard.ctx.set_pending_user(kim)  # e.g. an identification stage found kim
        assert wizard.ctx.pending_user() == kim
        assert wizard.session.prompt_data == {"_portal.pending_user_id": kim.id}
        kim_id = kim.id
        db.session.delete(kim)
        db.session.commit()
        assert wizard.ctx.pending_user() == sam  # a noted account that is gone is nobody
        wizard.session.prompt_data = {"_portal.pending_user_id": str(kim_id)}  # not an id we wrote
        assert wizard.ctx.pending_user() == sam
