"""What a stage sees of the flow in progress."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from ..extensions import db
from ..models import Flow, FlowSession, FlowStageBinding, Invitation


@dataclass
class FlowContext:
    flow: Flow
    session: FlowSession
    binding: FlowStageBinding | None = None
    current_user_id: int | None = None
    # Set by the user-login stage; the web layer performs the login.
    login_user_id: int | None = None
    # Outbox messages a stage queued; the web layer delivers them after its response.
    outbox_ids: list[int] = field(default_factory=list)
    # The visitor's address, for the audit log (set by the web layer; the engine knows no HTTP).
    client_ip: str | None = None

    @property
    def prompt_data(self) -> dict:
        return self.session.prompt_data

    def update_prompt_data(self, values: dict) -> None:
        # Reassign so SQLAlchemy notices the change to the JSON column.
        self.session.prompt_data = {**self.session.prompt_data, **values}

    @cached_property
    def invitation(self) -> Invitation | None:
        if self.session.invitation_id is None:
            return None
        return db.session.get(Invitation, self.session.invitation_id)
