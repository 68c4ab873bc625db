"""portal.flows.stages.invitation without HTTP: who may go on, and what the invitation fixes."""

from __future__ import annotations

from datetime import timedelta

from portal.auth import service as accounts
from portal.invitations import service
from portal.models import utcnow

from ...conftest import TEST_PASSWORD
from ...flowkit import begin, flow_named, make_flow


def _flow(app, slug, **options):
    make_flow(app, slug, [{"type": "invitation", "name": f"{slug}-gate", "options": options}])


def test_without_an_invitation_the_flow_is_refused_unless_the_stage_lets_visitors_on(app):
    _flow(app, "gated")
    _flow(app, "open", continue_flow_without_invitation=True)
    with app.app_context():
        assert begin("gated").step().kind == "denied"
        assert begin("open").step().kind == "done"
        # A bad link is refused even where visitors without one may go on.
        assert begin("open", token="not-a-real-token").step().kind == "denied"


def test_an_invitation_fixes_its_address_and_values(app):
    _flow(app, "invited")
    with app.app_context():
        admin = accounts.create_user(username="admin", email="a@example.com", password=TEST_PASSWORD,
                                     superuser=True)
        invitation = service.create_invitation(
            name="nia", flow=flow_named("invited"), created_by=admin, email="nia@example.com",
            attributes={"team": "blue"}, expires_at=utcnow() + timedelta(days=1))
        wizard = begin("invited", token=service.invitation_token(invitation))
        assert wizard.step().kind == "done"
        assert wizard.session.prompt_data == {"team": "blue", "email": "nia@example.com"}
        assert wizard.session.fixed_fields == ["email", "team"]
