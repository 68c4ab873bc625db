"""Invitation rules, enforced at use time (never by a clean-up job)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

import yaml
from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..models import Flow, Invitation, User, utcnow
from ..security import tokens

TOKEN_PURPOSE = "invitation"  # noqa: S105 (a label, not a secret)


class InvitationStatus(enum.Enum):
    VALID = "valid"
    USED_UP = "used up"
    EXPIRED = "expired"
    REVOKED = "revoked"

    @property
    def label(self) -> str:
        return {"valid": "Pending", "used up": "Used"}.get(self.value, self.value.capitalize())


@dataclass(frozen=True)
class Refusal:
    """Why an invitation cannot be used, phrased for the invitee, with the HTTP status to use."""

    reason: str
    title: str
    message: str
    status: int


ASK_AGAIN = "Ask the person who invited you to send you a new invitation link."

REFUSALS = {
    "unknown": Refusal(
        "unknown", "This invitation link is not valid",
        "The link may be mistyped, or the invitation was deleted. " + ASK_AGAIN, 404,
    ),
    "required": Refusal(
        "required", "An invitation is required",
        "You can only sign up here with an invitation link. " + ASK_AGAIN, 403,
    ),
    "wrong_flow": Refusal(
        "wrong_flow", "This invitation is not valid here",
        "The invitation belongs to a different sign-up page. Open the link exactly as you "
        "received it, or " + ASK_AGAIN[0].lower() + ASK_AGAIN[1:], 404,
    ),
    InvitationStatus.EXPIRED.value: Refusal(
        "expired", "This invitation has expired", "The invitation is no longer valid. " + ASK_AGAIN,
        410,
    ),
    InvitationStatus.USED_UP.value: Refusal(
        "used_up", "This invitation has already been used",
        "It cannot be used again. If you already have an account, sign in instead; otherwise "
        + ASK_AGAIN[0].lower() + ASK_AGAIN[1:], 410,
    ),
    InvitationStatus.REVOKED.value: Refusal(
        "revoked", "This invitation was withdrawn", "It can no longer be used. " + ASK_AGAIN, 410,
    ),
}


def _assign_token(invitation: Invitation) -> None:
    invitation.token_salt = tokens.new_salt()
    invitation.token_digest = tokens.digest(tokens.derive_token(TOKEN_PURPOSE, invitation.token_salt))


def create_invitation(
    *,
    name: str,
    flow: Flow,
    expires_at: datetime | None,
    attributes: dict | None = None,
    single_use: bool = False,
    max_uses: int | None = None,
    created_by: User | None = None,
    commit: bool = True,
) -> Invitation:
    """A new invitation with a fresh token; `commit=False` leaves it in the caller's transaction."""
    invitation = Invitation(
        name=name,
        flow=flow,
        expires_at=expires_at,
        attributes=attributes or {},
        single_use=single_use,
        max_uses=max_uses,
        created_by=created_by,
    )
    _assign_token(invitation)
    db.session.add(invitation)
    if commit:
        db.session.commit()
    return invitation


def create_invitations_bulk(
    names: list[str],
    *,
    flow: Flow,
    expires_at: datetime | None,
    attributes: dict | None = None,
    single_use: bool = False,
    max_uses: int | None = None,
    created_by: User | None = None,
) -> int:
    """Many invitations in one multi-row INSERT (1,000 in well under a second); returns how many."""
    now = utcnow()
    rows = []
    for name in names:
        salt = tokens.new_salt()
        rows.append({
            "name": name, "flow_id": flow.id, "expires_at": expires_at,
            "attributes": attributes or {}, "single_use": single_use, "max_uses": max_uses,
            "use_count": 0, "created_by_id": created_by.id if created_by else None,
            "created_at": now, "token_salt": salt,
            "token_digest": tokens.digest(tokens.derive_token(TOKEN_PURPOSE, salt)),
        })
    if rows:
        db.session.execute(insert(Invitation), rows)
    db.session.commit()
    return len(rows)


def update_invitation(invitation: Invitation, **changes) -> Invitation:
    for key, value in changes.items():
        setattr(invitation, key, value)
    db.session.commit()
    return invitation


def delete_invitation(invitation: Invitation) -> None:
    db.session.delete(invitation)
    db.session.commit()


def invitation_token(invitation: Invitation) -> str:
    return tokens.derive_token(TOKEN_PURPOSE, invitation.token_salt)


def invitation_link(invitation: Invitation, base_url: str) -> str:
    """authentik's link format: <base>/if/flow/<flow slug>/?itoken=<token>."""
    query = urlencode({"itoken": invitation_token(invitation)})
    return f"{base_url.rstrip('/')}/if/flow/{invitation.flow.slug}/?{query}"


def find_by_token(token: str | None) -> Invitation | None:
    if not token or len(token) > 200:
        return None
    return db.session.scalar(select(Invitation).filter_by(token_digest=tokens.digest(token)))


def usable_invitation_id(flow_slug: str, token: str | None) -> int | None:
    """The invitation this token opens on this flow, if it may be used now: one indexed query.

    None says only "not usable"; `refusal_for` explains why. Every invitation link lands here,
    so it is built once and runs on a pooled connection of its own, outside the ORM session.
    """
    if not token or len(token) > 200:
        return None
    with db.engine.connect() as connection:
        return connection.execute(_USABLE_INVITATION, {
            "digest": tokens.digest(token), "slug": flow_slug, "now": utcnow(),
        }).scalar()


def status_of(invitation: Invitation, now: datetime | None = None) -> InvitationStatus:
    now = now or utcnow()
    if invitation.revoked_at is not None:
        return InvitationStatus.REVOKED
    limit = invitation.use_limit
    if limit is not None and invitation.use_count >= limit:
        return InvitationStatus.USED_UP
    if invitation.expires_at is not None and invitation.expires_at <= now:
        return InvitationStatus.EXPIRED
    return InvitationStatus.VALID


def refusal_for(invitation: Invitation | None, flow: Flow, *, token_supplied: bool) -> Refusal | None:
    """Whether this invitation may be used on this flow now; None means it may."""
    if invitation is None:
        return REFUSALS["unknown" if token_supplied else "required"]
    if invitation.flow_id != flow.id:
        return REFUSALS["wrong_flow"]
    status = status_of(invitation)
    if status is not InvitationStatus.VALID:
        return REFUSALS[status.value]
    return None


def redeem(invitation_id: int, flow_id: int) -> bool:
    """Consume one use, atomically, inside the caller's transaction (the one writing the user).

    Call it before adding anything else to the session, so the UPDATE is the transaction's
    first write (on SQLite that takes the write lock before any read snapshot is held).

    The guarded UPDATE is the arbiter: when two people finish one single-use link at once,
    the database lets exactly one UPDATE match, and the other transaction is rolled back.
    """
    now = utcnow()
    result = db.session.execute(
        update(Invitation)
        .where(Invitation.id == invitation_id, Invitation.flow_id == flow_id, *_valid_clause(now))
        .values(use_count=Invitation.use_count + 1)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _valid_clause(now: datetime):
    return (
        Invitation.revoked_at.is_(None),
        or_(Invitation.expires_at.is_(None), Invitation.expires_at > now),
        or_(Invitation.single_use.is_(False), Invitation.use_count < 1),
        or_(Invitation.max_uses.is_(None), Invitation.use_count < Invitation.max_uses),
    )


_USABLE_INVITATION = (
    select(Invitation.id)
    .join(Flow, Flow.id == Invitation.flow_id)
    .where(Invitation.token_digest == bindparam("digest"), Flow.slug == bindparam("slug"),
           *_valid_clause(bindparam("now", type_=Invitation.expires_at.type)))
)


def pending_count() -> int:
    return db.session.scalar(
        select(func.count(Invitation.id)).where(*_valid_clause(utcnow()))
    )


def list_query(search: str = ""):
    """Invitations newest first, with what the list shows loaded up front (no N+1).

    Newest first is by id (ids only grow), so pages walk the primary key: no sort, and a
    search reads the table in order instead of jumping through an index row by row.
    """
    query = (
        select(Invitation)
        .options(selectinload(Invitation.flow), selectinload(Invitation.created_by))
        .order_by(Invitation.id.desc())
    )
    search = search.strip()
    if search:
        query = query.where(Invitation.name.icontains(search, autoescape=True))
    return query


def attributes_as_yaml(attributes: dict) -> str:
    """Attributes as the admin edits them."""
    if not attributes:
        return ""
    return yaml.safe_dump(attributes, sort_keys=False, allow_unicode=True)
