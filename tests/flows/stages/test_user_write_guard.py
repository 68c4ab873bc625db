"""A user write with nothing to write refuses: no nameless account, no invitation used up."""

from __future__ import annotations

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuditEvent, Invitation, InvitationUse, User

from ...conftest import path_of
from ...flowkit import make_flow

REFUSAL = "This sign-up page cannot create accounts yet"


def _counts(app) -> tuple[int, int, int]:
    """(users, invitation uses, user.created events)."""
    with app.app_context():
        return (db.session.scalar(select(func.count(User.id))),
                db.session.scalar(select(func.count(InvitationUse.id))),
                db.session.scalar(select(func.count(AuditEvent.id)).filter_by(action="user.created")))


def test_invited_flow_without_prompts_refuses_and_keeps_the_invitation(app, admin, client,
                                                                      make_invitation):
    make_flow(app, "bare", [{"type": "invitation", "name": "bare-invitation"},
                            {"type": "user_write", "name": "bare-write"}])
    invitation_id, link = make_invitation(flow_slug="bare", single_use=True)
    before = _counts(app)
    page = client.get(path_of(link), follow_redirects=True)
    assert page.status_code == 503
    assert REFUSAL in page.get_data(as_text=True)
    assert _counts(app) == before == (1, 0, 0)  # only the admin exists
    with app.app_context():
        invitation = db.session.get(Invitation, invitation_id)
        assert invitation.uses == [] and invitation.revoked_at is None
    # A second visit with the same link is refused the same way: the link still works.
    again = app.test_client().get(path_of(link), follow_redirects=True)
    assert again.status_code == 503 and REFUSAL in again.get_data(as_text=True)


def test_blank_username_in_prompt_data_is_refused(app, client):
    """Fixed data or a prompt that left the username empty (spaces only) is no username."""
    from portal.flows import executor
    from portal.models import Flow

    make_flow(app, "blank", [{"type": "user_write", "name": "blank-write"}])
    with app.app_context():
        flow = db.session.scalar(select(Flow).filter_by(slug="blank"))
        flow_session, _ = executor.start(flow, None, current_user=None,
                                         lifetime=app.config["FLOW_SESSION_LIFETIME_DELTA"])
        flow_session.prompt_data = {"username": "   ", "email": "x@example.com"}
        db.session.commit()
        step = executor.FlowExecutor(flow_session).step()
        assert (step.kind, step.status, step.title) == ("denied", 503, REFUSAL)
    assert _counts(app) == (0, 0, 0)
