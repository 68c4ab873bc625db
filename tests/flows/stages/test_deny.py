"""portal.flows.stages.deny without HTTP."""

from __future__ import annotations

from portal.flows.stages.deny import DEFAULT_MESSAGE

from ...flowkit import begin, make_flow


def test_deny_ends_the_flow_with_the_admins_message_or_the_default(app):
    make_flow(app, "closed", [{"type": "deny", "name": "closed-deny",
                               "options": {"deny_message": "Sign-ups are closed."}}])
    make_flow(app, "plain", [{"type": "deny", "name": "plain-deny", "options": {"deny_message": "  "}}])
    with app.app_context():
        step = begin("closed").step()
        assert (step.kind, step.title, step.message, step.status) == (
            "denied", "Access denied", "Sign-ups are closed.", 403)
        assert begin("plain").step().message == DEFAULT_MESSAGE
