"""What a stage sees of the flow in progress."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property

from sqlalchemy import inspect

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


# The note that names the account a flow acts on (authentik's "pending user"): set by the stage
# that finds the person (identification) or writes them (user write). Read through
# FlowContext.pending_user() only.
PENDING_USER = "pending_user_id"


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
    # Set by a stage that ended the visitor's account (user delete); the web layer signs the
    # browser out.
    sign_out: bool = False
    # Outbox messages a stage queued; the web layer delivers them after its response.
    outbox_ids: list[int] = field(default_factory=list)
    # The visitor's address, for the audit log (set by the web layer; the engine knows no HTTP).
    client_ip: str | None = None
    # Where absolute links (in emails) point: the web layer passes portal.urls.base_url().
    base_url: str = ""
    # Messages for the visitor ("a new email is on its way"), as (category, text); the executor
    # puts them on the Step and the web layer shows them. Stages never call flash().
    notices: list[tuple[str, str]] = field(default_factory=list)
    # The pending user as last loaded or written in this request, so that later stages (and the
    # web layer's sign-in) find it without reading it again; pending_user() checks its id.
    _pending: User | None = field(default=None, repr=False)

    def notify(self, text: str, category: str = "info") -> None:
        self.notices.append((category, text))

    @property
    def prompt_data(self) -> dict:
        return self.session.prompt_data

    def update_prompt_data(self, values: dict) -> None:
        # Reassign so SQLAlchemy notices the change to the JSON column.
        self.session.prompt_data = {**self.session.prompt_data,
                                    **{k: v for k, v in values.items() if not is_private(k)}}

    def pending_user(self) -> User | None:
        """The account this flow acts on: the one a stage noted (`_portal.pending_user_id`: the
        identification stage found it, or user write wrote it), else the signed-in visitor.

        The one answer for every stage that updates, deletes, signs in or checks a person
        (user write's update modes, user delete, consent's remembered acceptances)."""
        user_id = noted(self.session, PENDING_USER)
        kept = self._pending
        if (kept is not None and type(user_id) is int and inspect(kept).persistent
                and kept.id == user_id):
            return kept
        user = db.session.get(User, user_id) if type(user_id) is int else None
        if user is None and self.current_user_id is not None:
            user = db.session.get(User, self.current_user_id)
        return user

    def set_pending_user(self, user: User | None) -> None:
        note(self.session, PENDING_USER, user.id if user is not None else None)
        self._pending = user

    @cached_property
    def invitation(self) -> Invitation | None:
        invitation_id = self.session.invitation_id
        if invitation_id is None:
            return None
        loaded = self.session.invitation  # loaded with the session (executor.load, start)
        if loaded is not None and loaded.id == invitation_id:
            return loaded
        return db.session.get(Invitation, invitation_id)
