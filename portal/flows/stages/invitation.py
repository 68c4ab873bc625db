"""Invitation stage: admits the invitee only with a valid invitation for this flow."""

from __future__ import annotations

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
            return Deny(refusal.title, refusal.message, refusal.status)
        fixed = dict(ctx.invitation.attributes or {})
        ctx.update_prompt_data(fixed)
        ctx.session.fixed_fields = sorted(k for k in fixed if not isinstance(fixed[k], dict))
        return Next()
