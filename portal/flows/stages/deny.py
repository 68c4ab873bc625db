"""Deny stage: ends the flow with the admin's message (authentik's DenyStage)."""

from __future__ import annotations

from .base import Deny, StageType
from .options import TEXTAREA, Option

DEFAULT_MESSAGE = "You cannot continue here. Ask the person who invited you for help."


class DenyStage(StageType):
    type_name = "deny"
    label = "Deny"
    description = "Ends the flow with a message (usually behind a condition)."
    needs_stored_session = False  # it only reads
    model = "authentik_stages_deny.denystage"
    declared_options = (
        Option("deny_message", TEXTAREA, "Message", default="", max_length=5000,
               help="What the visitor reads when the flow ends here."),
    )

    def run(self, ctx) -> Deny:
        message = str(self.options.get("deny_message") or "").strip() or DEFAULT_MESSAGE
        return Deny("Access denied", message, 403)
