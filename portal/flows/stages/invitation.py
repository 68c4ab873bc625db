"""Invitation stage: admits the invitee only with a valid invitation for this flow."""

from __future__ import annotations

from ...audit import Action, record_event_once
from ...invitations.service import refusal_for
from .base import Deny, Next, StageType
from .options import BOOL, Option


class InvitationStage(StageType):
    type_name = "invitation"
    label = "Invitation"
    description = "Admits only visitors with a valid invitation for this flow, and applies its values."
    needs_stored_session = False  # it only reads (a refusal is audited, at most once a minute)
    model = "authentik_stages_invitation.invitationstage"
    declared_options = (
        Option("continue_flow_without_invitation", BOOL, "Continue without an invitation",
               default=False,
               help="Off: the flow needs a valid invitation. On: visitors without one may go on."),
    )

    def run(self, ctx) -> Next | Deny:
        if ctx.invitation is None and not ctx.session.token_supplied and self.options.get(
            "continue_flow_without_invitation", False
        ):
            return Next()
        refusal = refusal_for(ctx.invitation, ctx.flow, token_supplied=ctx.session.token_supplied)
        if refusal:
            record_refusal(ctx, refusal.reason)
            return Deny(refusal.title, refusal.message, refusal.status)
        fixed = dict(ctx.invitation.attributes or {})
        if ctx.invitation.email:  # recipient-bound: the invited address, pre-filled and locked
            fixed["email"] = ctx.invitation.email
        ctx.update_prompt_data(fixed)
        ctx.session.fixed_fields = sorted(k for k in fixed if not isinstance(fixed[k], dict))
        return Next()


def record_refusal(ctx, reason: str) -> None:
    """Log a refused use of a link; the flow's own commit (ending the session) keeps it.

    Opening the flow without any link is no use of one: the page says an invitation is needed
    and nothing is logged, so anonymous visits write nothing. A refused link is logged at most
    once a minute per (reason, address, flow, invitation), so retrying one bad link cannot grow
    the log by a row per request.
    """
    if ctx.invitation is None and not ctx.session.token_supplied:
        return
    record_event_once(Action.INVITATION_REFUSED, ip=ctx.client_ip, obj=ctx.invitation,
                      object_type="" if ctx.invitation else "invitation",
                      object_repr="" if ctx.invitation else "(unknown link)",
                      key={"reason": reason, "flow": ctx.flow.slug})
