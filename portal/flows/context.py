"""What a stage sees of the flow in progress."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property

from ..extensions import db
from ..models import Flow, FlowSession, FlowStageBinding, Invitation, User

# Keys under this prefix are the engine's own notes in prompt_data (such as which address was
# verified): never taken from a form or an invitation, never copied onto the user.
PRIVATE_PREFIX = "_portal."


def is_private(key) -> bool:
    return str(key).startswith(PRIVATE_PREFIX)


def note(session: FlowSession, key: str, value) -> None:
    """Keep one of the engine's notes with the flow session."""
    session.prompt_data = {**(session.prompt_data or {}), PRIVATE_PREFIX + key: value}


def noted(session: FlowSession, key: str):
    return (session.prompt_data or {}).get(PRIVATE_PREFIX + key)


@dataclass
class FlowContext:
    flow: Flow
    session: FlowSession
    binding: FlowStageBinding | None = None
    current_user_id: int | None = None
    # Set by the user-login stage; the web layer performs the login.
    login_user_id: int | None = None
    # How long that sign-in lasts (user login's session_duration); None: the browser session.
    login_lifetime: timedelta | None = None
    # Outbox messages a stage queued; the web layer delivers them after its response.
    outbox_ids: list[int] = field(default_factory=list)
    # The visitor's address, for the audit log (set by the web layer; the engine knows no HTTP).
    client_ip: str | None = None
    # Where absolute links (in emails) point: the web layer passes portal.urls.base_url().
    base_url: str = ""
    # Messages for the visitor ("a new email is on its way"), as (category, text); the executor
    # puts them on the Step and the web layer shows them. Stages never call flash().
    notices: list[tuple[str, str]] = field(default_factory=list)

    def notify(self, text: str, category: str = "info") -> None:
        self.notices.append((category, text))

    def pending_user(self) -> User | None:
        """The person this flow acts for, the one rule every stage reads it by: the user the
        flow has written or identified (`session.user_id`: set by user write, or by a stage that
        identifies someone through `set_pending_user`), else the signed-in visitor (a
        stage-configuration flow run from the account page)."""
        user_id = self.session.user_id if self.session.user_id is not None \
            else self.current_user_id
        return db.session.get(User, user_id) if user_id is not None else None

    def set_pending_user(self, user: User) -> None:
        """An identification stage names the person the rest of the flow is about."""
        self.session.user_id = user.id

    @property
    def prompt_data(self) -> dict:
        return self.session.prompt_data

    def update_prompt_data(self, values: dict) -> None:
        # Reassign so SQLAlchemy notices the change to the JSON column.
        self.session.prompt_data = {**self.session.prompt_data,
                                    **{k: v for k, v in values.items() if not is_private(k)}}

    @cached_property
    def invitation(self) -> Invitation | None:
        if self.session.invitation_id is None:
            return None
        return db.session.get(Invitation, self.session.invitation_id)
