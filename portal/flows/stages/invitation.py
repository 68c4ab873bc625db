"""Invitation stage: admits the invitee only with a valid invitation for this flow."""

from __future__ import annotations

from ...audit import Action, record_event
from ...invitations.service import refusal_for
from .base import Deny, Next, StageType


class InvitationStage(StageType):
    type_name = "invitation"
    label = "Invitation"
    description = "Admits only visitors with a valid invitation for this flow, and applies its values."

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
    """Log a refused use; the flow's own commit (ending the session) keeps it."""
    record_event(Action.INVITATION_REFUSED, ip=ctx.client_ip, obj=ctx.invitation,
                 object_type="" if ctx.invitation else "invitation",
                 object_repr="" if ctx.invitation else "(unknown link)",
                 detail={"reason": reason, "flow": ctx.flow.slug})
