"""Invitation rules, enforced at use time (never by a clean-up job)."""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import yaml
from sqlalchemy import and_, bindparam, case, delete, exists, func, null, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import aliased, joinedload, selectinload

from ..audit import Action, record_event
from ..auth.service import normalise_email, same_email, verified_email
from ..extensions import db
from ..mail import cancel_queued, enqueue, mail_configured
from ..mail.messages import invitation_email
from ..models import (
    Flow,
    FlowSession,
    Group,
    Invitation,
    InvitationDecline,
    InvitationRole,
    InvitationUse,
    OutboxMessage,
    Role,
    Tenant,
    User,
    tenant_members,
    utcnow,
)
from ..security import tokens
from ..tenants import visible
from . import search as search_index

TOKEN_PURPOSE = "invitation"  # noqa: S105 (a label, not a secret)
DIGEST_LENGTH = 64  # hex SHA-256


class InvitationStatus(enum.Enum):
    VALID = "valid"
    ACCEPTED = "accepted"  # a single-use (or recipient-bound) link that was used
    USED_UP = "used up"  # a multi-use link whose every use is taken
    EXPIRED = "expired"
    REVOKED = "revoked"

    @property
    def label(self) -> str:
        return {"valid": "Pending", "used up": "Used up"}.get(self.value, self.value.capitalize())

    @property
    def key(self) -> str:
        """The value used in URLs (?status=pending)."""
        return {"valid": "pending", "used up": "used_up"}.get(self.value, self.value)


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
    "tenant_inactive": Refusal(
        "tenant_inactive", "This invitation is paused",
        "The team that invited you is deactivated on this portal for now, so its invitations "
        "do not work. " + ASK_AGAIN, 403,
    ),
    "wrong_email": Refusal(
        "wrong_email", "This invitation is for someone else",
        "It was sent to a different email address and works only with that address. "
        + ASK_AGAIN, 403,
    ),
    # An existing account accepting (grant_access): the invitation names an address that is
    # not this account's verified one.
    "not_your_address": Refusal(
        "not_your_address", "This invitation is for another address",
        "It can only be accepted by the account whose verified email address is the one it was "
        "sent to. Sign in with that account, or " + ASK_AGAIN[0].lower() + ASK_AGAIN[1:], 403,
    ),
    "already_accepted": Refusal(
        "already_accepted", "You have already accepted this invitation",
        "Your account has the access it gives. There is nothing more to do.", 409,
    ),
}
REFUSALS[InvitationStatus.ACCEPTED.value] = REFUSALS[InvitationStatus.USED_UP.value]


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
    email: str | None = None,
    message: str = "",
    allowed_domains: Sequence[str] = (),
    groups: Sequence[Group] = (),
    roles: Sequence[tuple[Role, Sequence[str]]] = (),
    ip: str | None = None,
    commit: bool = True,
    audit: bool = True,
    instance: bool | None = None,
    grants_superuser: bool = False,
    grants=None,
) -> Invitation:
    """One invitation. With `email` it is recipient-bound: single use, for that address only.

    `instance` (default: when acting on an instance page) makes it an invitation to the whole
    instance (no tenant); `grants_superuser` makes its invitee a superadmin. Both pass
    access.check_instance_invitation with `grants` (default: those of `created_by`) first."""
    from ..access import check_instance_invitation, grants_for
    from ..tenants import in_instance

    instance = in_instance() if instance is None else instance
    if instance or grants_superuser:
        check_instance_invitation(grants if grants is not None else grants_for(created_by),
                                  instance=instance, superuser=grants_superuser, flow=flow,
                                  groups=groups, roles=roles)
    invitation = Invitation(
        name=name,
        flow=flow,
        expires_at=expires_at,
        attributes=attributes or {},
        single_use=single_use or bool(email),
        max_uses=None if email else max_uses,
        created_by=created_by,
        email=email or None,
        cc=[],
        bcc=[],
        message=message or "",
        allowed_domains=[] if email else normalise_domains(allowed_domains),
        groups=list(groups),
        direct_roles=[InvitationRole(role=role, namespaces=list(namespaces)) for role, namespaces in roles],
        grants_superuser=bool(grants_superuser),
    )
    if instance:
        # An explicit SQL NULL: a plain None would let the column default pick a tenant.
        invitation.tenant_id = null()
    _assign_token(invitation)
    db.session.add(invitation)
    if audit:
        record_created(invitation, ip=ip)
    if commit:
        db.session.commit()
    return invitation


def record_created(invitation: Invitation, *, ip: str | None) -> None:
    """Log the creation; bulk creation calls it after one flush for all rows."""
    record_event(Action.INVITATION_CREATED, actor=invitation.created_by, ip=ip, obj=invitation,
                 detail={"flow": invitation.flow.slug,
                         **({"email": invitation.email} if invitation.email else {}),
                         **({"superuser": True} if invitation.grants_superuser else {})})


def invite_recipients(
    addresses: Sequence[str],
    *,
    name: str,
    base_url: str,
    cc: Sequence[str] = (),
    bcc: Sequence[str] = (),
    created_by: User | None = None,
    ip: str | None = None,
    **options,
) -> tuple[list[Invitation], bool]:
    """One recipient-bound invitation per address, each with its email, in one transaction.

    Returns the invitations and whether emails were queued (False: no mail server is set,
    the admin shares the links by hand).
    """
    invitations = []
    for address in addresses:
        label = name if len(addresses) == 1 and name else (f"{name} ({address})" if name else address)
        invitation = create_invitation(name=label[:255], email=address, created_by=created_by,
                                       ip=ip, commit=False, **options)
        invitation.cc, invitation.bcc = list(cc), list(bcc)
        invitations.append(invitation)
    emailed = mail_configured()
    if emailed:
        db.session.flush()
        for invitation in invitations:
            queue_invitation_email(invitation, base_url)
    db.session.commit()
    return invitations, emailed


def queue_invitation_email(invitation: Invitation, base_url: str) -> OutboxMessage:
    """Put the invitation's email in the outbox, in the caller's transaction."""
    subject, text, html = invitation_email(invitation, invitation_link(invitation, base_url),
                                           invitation.created_by)
    return enqueue(invitation.email, subject, text, html, cc=invitation.cc or (),
                   bcc=invitation.bcc or (), invitation=invitation)


def _grants_of(invitation: Invitation) -> dict:
    return {"groups": sorted(g.name for g in invitation.groups),
            "roles": sorted([d.role.name, list(d.namespaces or [])] for d in invitation.direct_roles)}


def _same(old, new) -> bool:
    """Equal, reading a stored naive timestamp (SQLite) as the UTC it is."""
    if isinstance(old, datetime) and isinstance(new, datetime):
        return old.replace(tzinfo=old.tzinfo or UTC) == new.replace(tzinfo=new.tzinfo or UTC)
    return old == new


def update_invitation(invitation: Invitation, *, roles: Sequence[tuple[Role, Sequence[str]]] | None = None,
                      actor: User | None = None, ip: str | None = None, **changes) -> Invitation:
    """Save an edit (the caller checked the ceiling on the old and the new grants) and record
    what changed, the grants before and after. An invitation grants at each use, so a change
    applies to future uses only: people who used it already keep what they were given.
    `roles`: the direct roles as they are to be, each with its namespaces (None: unchanged);
    a role kept keeps its row, so its key is never deleted and inserted at once."""
    before = _grants_of(invitation)
    changed = sorted(key for key, value in changes.items()
                     if key != "groups" and not _same(getattr(invitation, key), value))
    for key, value in changes.items():
        setattr(invitation, key, value)
    if roles is not None:
        kept = {d.role_id: d for d in invitation.direct_roles}
        rows = []
        for role, namespaces in roles:
            row = kept.get(role.id) or InvitationRole(role=role)
            row.namespaces = list(namespaces)
            rows.append(row)
        invitation.direct_roles = rows
    after = _grants_of(invitation)
    detail: dict = {"changed": changed}
    for what in ("groups", "roles"):
        if before[what] != after[what]:
            detail[what] = {"before": before[what], "after": after[what]}
            detail["changed"] = sorted({*detail["changed"], what})
    if invitation.use_count:
        detail["uses_so_far"] = invitation.use_count
    record_event(Action.INVITATION_UPDATED, actor=actor, ip=ip, obj=invitation, detail=detail)
    db.session.commit()
    return invitation


def delete_invitation(invitation: Invitation, *, actor: User | None = None,
                      ip: str | None = None) -> None:
    delete_many([invitation], actor=actor, ip=ip)


class ActionRefused(ValueError):
    """The action does not apply to this invitation now; the message says why."""


def resend(invitation: Invitation, *, expires_at: datetime, base_url: str,
           actor: User | None = None, ip: str | None = None) -> bool:
    """A new link and a new expiry; the old link stops working. Emails it when it can.

    Returns whether an email was queued.
    """
    status = status_of(invitation)
    if status in (InvitationStatus.REVOKED, InvitationStatus.ACCEPTED, InvitationStatus.USED_UP):
        raise ActionRefused(f"This invitation is {status.label.lower()}; create a new one instead.")
    cancel_queued([invitation.id])  # an email still waiting carries the old link
    _assign_token(invitation)
    _detach_open_flow_sessions(invitation)
    invitation.expires_at = expires_at
    emailed = bool(invitation.email) and mail_configured()
    if emailed:
        queue_invitation_email(invitation, base_url)
    record_event(Action.INVITATION_RESENT, actor=actor, ip=ip, obj=invitation,
                 detail={"expires_at": expires_at.isoformat(), "emailed": emailed})
    db.session.commit()
    return emailed


def _detach_open_flow_sessions(invitation: Invitation) -> None:
    """Sign-ups begun with the old link lose it: their invitation and user-write stages refuse.

    Sessions that already wrote their user keep it; the use was taken before the resend.
    """
    db.session.execute(
        update(FlowSession)
        .where(FlowSession.invitation_id == invitation.id, FlowSession.finished_at.is_(None),
               FlowSession.user_id.is_(None))
        .values(invitation_id=None)
        .execution_options(synchronize_session=False)
    )


def extend(invitation: Invitation, *, expires_at: datetime, actor: User | None = None,
           ip: str | None = None) -> None:
    """A later expiry for the same link."""
    if invitation.revoked_at is not None:
        raise ActionRefused("This invitation was revoked; it cannot be extended.")
    if expires_at <= utcnow():
        raise ActionRefused("Choose a moment in the future.")
    previous = invitation.expires_at
    invitation.expires_at = expires_at
    record_event(Action.INVITATION_EXTENDED, actor=actor, ip=ip, obj=invitation,
                 detail={"from": previous.isoformat() if previous else None,
                         "to": expires_at.isoformat()})
    db.session.commit()


def revoke_many(invitations: Iterable[Invitation], *, actor: User | None = None,
                ip: str | None = None) -> int:
    """Revoke the invitations that are not revoked yet; their links stop working at once."""
    now = utcnow()
    count = 0
    for invitation in invitations:
        if invitation.revoked_at is None:
            invitation.revoked_at = now
            record_event(Action.INVITATION_REVOKED, actor=actor, ip=ip, obj=invitation)
            cancel_queued([invitation.id])
            count += 1
    db.session.commit()
    return count


def delete_many(invitations: Iterable[Invitation], *, actor: User | None = None,
                ip: str | None = None) -> int:
    count = 0
    for invitation in invitations:
        record_event(Action.INVITATION_DELETED, actor=actor, ip=ip, obj=invitation)
        cancel_queued([invitation.id])
        db.session.delete(invitation)
        count += 1
    db.session.commit()
    return count


def purge_expired(older_than: timedelta) -> int:
    """Delete invitations that expired more than `older_than` ago (use-time checks stay)."""
    cutoff = utcnow() - older_than
    result = db.session.execute(
        delete(Invitation).where(Invitation.expires_at.is_not(None), Invitation.expires_at < cutoff)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount


def normalise_domains(domains: Iterable[str]) -> list[str]:
    result = []
    for domain in domains:
        domain = domain.strip().lower().lstrip("@")
        if domain and domain not in result:
            result.append(domain)
    return result


DOMAIN_RE = re.compile(r"(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")


def domain_problem(domain: str) -> str | None:
    """Why this is not an allowed-domain entry (lower case, no "@"), or None."""
    if not DOMAIN_RE.fullmatch(domain):
        return f"{domain!r} is not a domain such as example.com."
    return None


def send_email_now(invitation: Invitation, *, base_url: str, actor: User | None = None,
                   ip: str | None = None) -> OutboxMessage:
    """Queue the invitation's email again with its current link (authentik's send_email):
    only a pending invitation with an address, and only when a mail server is set."""
    if not invitation.email:
        raise ActionRefused("This invitation is a link with no address; share the link instead.")
    status = status_of(invitation)
    if status is not InvitationStatus.VALID:
        raise ActionRefused(f"This invitation is {status.label.lower()}; nothing to send.")
    if not mail_configured():
        raise ActionRefused("No mail server is configured (MAIL_SERVER is empty); share the link.")
    message = queue_invitation_email(invitation, base_url)
    db.session.commit()
    return message


def pending_for_address(email: str) -> list[Invitation]:
    """The pending recipient-bound invitations addressed to this email (any case)."""
    email = (email or "").strip().lower()
    if not email:
        return []
    return list(db.session.scalars(
        select(Invitation).options(selectinload(Invitation.flow), selectinload(Invitation.groups),
                                   selectinload(Invitation.created_by))
        .where(func.lower(Invitation.email) == email, *_valid_clause(utcnow()))
        .order_by(Invitation.id.desc())))


def email_problem(invitation: Invitation | None, email: str | None) -> str | None:
    """Why this address may not enroll with this invitation ("wrong_email", "domain"), or None."""
    if invitation is None:
        return None
    email = (email or "").strip().lower()
    if invitation.email and email != invitation.email.lower():
        return "wrong_email"
    if invitation.allowed_domains:
        domain = email.rpartition("@")[2]
        if domain not in invitation.allowed_domains:
            return "domain"
    return None


def domain_message(invitation: Invitation) -> str:
    domains = ", ".join(invitation.allowed_domains)
    return f"This invitation accepts only addresses at {domains}."


def invitation_token(invitation: Invitation) -> str:
    return tokens.derive_token(TOKEN_PURPOSE, invitation.token_salt)


def invitation_link(invitation: Invitation, base_url: str) -> str:
    """authentik's link format: <base>/if/flow/<flow slug>/?itoken=<token>."""
    query = urlencode({"itoken": invitation_token(invitation)})
    return f"{base_url.rstrip('/')}/if/flow/{invitation.flow.slug}/?{query}"


def find_by_token(token: str | None) -> Invitation | None:
    if not token or len(token) > 200:
        return None
    return find_by_digest(tokens.digest(token))


def grant_loads(via=None) -> tuple:
    """Loader options for what an invitation grants (its tenant, groups, direct roles with
    their roles, and who invited): read with the invitation in the same query, since the
    invitee's first page shows them and the final write gives them. `via` is the relationship
    the invitation is reached through (e.g. FlowSession.invitation), if not queried itself."""
    def load(attr):
        return joinedload(via).joinedload(attr) if via is not None else joinedload(attr)

    return (load(Invitation.tenant), load(Invitation.groups), load(Invitation.created_by),
            load(Invitation.direct_roles).joinedload(InvitationRole.role))


def find_by_digest(token_digest: str | None) -> Invitation | None:
    """The invitation whose current link has this digest (a resent one's old digest finds
    none), with what it grants."""
    if not isinstance(token_digest, str) or len(token_digest) != DIGEST_LENGTH:
        return None
    return db.session.scalars(_invitation_by_digest(), {"digest": token_digest}).unique().first()


@functools.cache
def _invitation_by_digest():
    """Built once, with its cache key (its joined loads cost more to build than to read)."""
    return (select(Invitation).where(Invitation.token_digest == bindparam("digest"))
            .options(*grant_loads()))


def usable_invitation_digest(flow_slug: str, token: str | None) -> str | None:
    """The digest of this token if it opens a usable invitation on this flow: one indexed query.

    The digest (not the invitation's id) is what the wizard remembers, so a link that is resent
    in the meantime stops working. None says only "not usable"; `refusal_for` explains why.
    Every invitation link lands here, so it costs as little as the database allows: the SQL is
    compiled once per dialect and sent as it is (`exec_driver_sql`: no statement cache key to
    build per request, about half of the time in SQLAlchemy), on a pooled connection of its
    own, outside the ORM session. On PostgreSQL in autocommit: one SELECT is its own snapshot,
    and the BEGIN before it and the ROLLBACK when the pool takes the connection back were two
    more round trips than the query. SQLite's driver opens no transaction for a SELECT, and
    switching its isolation level costs a PRAGMA each way, so it is left as it is.
    """
    if not token or len(token) > 200:
        return None
    token_digest = tokens.digest(token)
    sql, names, fixed, now_to_db = _usable_statement(db.engine.dialect)
    values = {**fixed, "digest": token_digest, "slug": flow_slug, "now": now_to_db(utcnow())}
    connection = db.engine.connect()
    if connection.dialect.name != "sqlite":
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
    with connection:
        found = connection.exec_driver_sql(
            sql, tuple(values[name] for name in names) if names else values).scalar()
    return token_digest if found is not None else None


@functools.lru_cache(maxsize=8)  # one per engine's dialect (tests make many)
def _usable_statement(dialect):
    """_USABLE_INVITATION compiled for this dialect: its SQL, the order of its parameters (for
    a positional driver such as sqlite3; None for a named one such as psycopg), the values it
    fixes itself, and how `now` is written (the column type's own bind processing)."""
    compiled = _USABLE_INVITATION.compile(dialect=dialect)
    fixed = compiled.construct_params({"digest": "", "slug": "", "now": None})
    to_db = Invitation.expires_at.type.bind_processor(dialect) or (lambda value: value)
    return str(compiled), compiled.positiontup, fixed, to_db


def status_of(invitation: Invitation, now: datetime | None = None) -> InvitationStatus:
    now = now or utcnow()
    if invitation.revoked_at is not None:
        return InvitationStatus.REVOKED
    limit = invitation.use_limit
    if limit is not None and invitation.use_count >= limit:
        return InvitationStatus.ACCEPTED if limit == 1 else InvitationStatus.USED_UP
    if invitation.expires_at is not None and invitation.expires_at <= now:
        return InvitationStatus.EXPIRED
    return InvitationStatus.VALID


def refusal_for(invitation: Invitation | None, flow: Flow, *, token_supplied: bool) -> Refusal | None:
    """Whether this invitation may be used on this flow now; None means it may."""
    if invitation is None:
        return REFUSALS["unknown" if token_supplied else "required"]
    if invitation.flow_id != flow.id or flow.tenant_id not in (None, invitation.tenant_id):
        return REFUSALS["wrong_flow"]  # never a flow owned by another tenant
    if invitation.tenant is not None and not invitation.tenant.active:
        return REFUSALS["tenant_inactive"]
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
    result = db.session.execute(_redeem_statement(), {
        "invitation": invitation_id, "flow": flow_id, "now": utcnow()})
    return result.rowcount == 1


@functools.cache
def _redeem_statement():
    """redeem's guarded UPDATE, built once (with its cache key: the subqueries made it dear)."""
    return (
        update(Invitation)
        .where(Invitation.id == bindparam("invitation"), Invitation.flow_id == bindparam("flow"),
               *_usable_clause(bindparam("now", type_=Invitation.expires_at.type)))
        .values(use_count=Invitation.use_count + 1)
        .execution_options(synchronize_session=False)
    )


def _usable_clause(now):
    """Valid, and usable where it is used: its tenant is active and its flow is instance-wide
    or the tenant's own (an instance invitation: instance-wide flows only, as NULL equals no
    tenant's id) (the list pages' status filters need only _valid_clause)."""
    owner = aliased(Flow)  # not the outer query's Flow: only Invitation is correlated
    return (
        *_valid_clause(now),
        or_(Invitation.tenant_id.is_(None),  # an instance invitation: no tenant to be paused
            Invitation.tenant_id.in_(select(Tenant.id).where(Tenant.active.is_(True)))),
        Invitation.flow_id.in_(select(owner.id).where(or_(owner.tenant_id.is_(None),
                                                          owner.tenant_id == Invitation.tenant_id))),
    )


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
           *_usable_clause(bindparam("now", type_=Invitation.expires_at.type)))
)


def pending_count(flow_ids: set[int] | None = None, tenant=None) -> int:
    """Pending invitations of a tenant (the current one); `flow_ids` limits them as it limits
    list_query (None: every flow)."""
    query = select(func.count(Invitation.id)).where(visible(Invitation, tenant), *_valid_clause(utcnow()))
    if flow_ids is not None:
        query = query.where(Invitation.flow_id.in_(flow_ids))
    return db.session.scalar(query)


def recent_uses(flow_ids: set[int] | None = None, limit: int = 10, tenant=None) -> list[InvitationUse]:
    """The latest enrollments through a tenant's invitations (the current tenant's), newest
    first, with their user and invitation; `flow_ids` limits them as it limits list_query."""
    query = (
        select(InvitationUse).join(InvitationUse.invitation).where(visible(Invitation, tenant))
        .options(selectinload(InvitationUse.user), selectinload(InvitationUse.invitation))
        .order_by(InvitationUse.used_at.desc(), InvitationUse.id.desc()).limit(limit)
    )
    if flow_ids is not None:
        query = query.where(Invitation.flow_id.in_(flow_ids))
    return list(db.session.scalars(query))


def _status_clause(status: InvitationStatus, now: datetime):
    limit = case((Invitation.single_use.is_(True), 1), else_=Invitation.max_uses)
    not_revoked = Invitation.revoked_at.is_(None)
    reached = and_(limit.is_not(None), Invitation.use_count >= limit)
    if status is InvitationStatus.VALID:
        return and_(*_valid_clause(now))
    if status is InvitationStatus.REVOKED:
        return Invitation.revoked_at.is_not(None)
    if status is InvitationStatus.ACCEPTED:
        return and_(not_revoked, reached, limit == 1)
    if status is InvitationStatus.USED_UP:
        return and_(not_revoked, reached, limit > 1)
    return and_(not_revoked, ~reached.self_group(), Invitation.expires_at.is_not(None),
                Invitation.expires_at <= now)


STATUS_BY_KEY = {s.key: s for s in InvitationStatus}
SORTS = {
    "created": Invitation.id,  # ids only grow: newest first walks the primary key
    "expires": Invitation.expires_at,
    "name": func.lower(Invitation.name),
    "email": func.lower(Invitation.email),
    "uses": Invitation.use_count,
}


# Sorts by the primary key: the list pages through them by key (pagination.KeysetPage).
KEYSET_SORTS = {"-created": Invitation.id, "created": Invitation.id}


def list_query(*, search: str = "", status: str = "", flow_id: int | None = None,
               creator_id: int | None = None, flow_ids: set[int] | None = None,
               sort: str = "-created", tenant=None):
    """A tenant's invitations (the current tenant's) filtered and sorted as the admin asked,
    with what the list shows loaded up front (no N+1). `flow_ids` limits the list to the flows
    the admin may manage."""
    query = select(Invitation).options(
        selectinload(Invitation.flow), selectinload(Invitation.created_by),
        selectinload(Invitation.groups),
    ).where(visible(Invitation, tenant))
    if search.strip():  # each database's own index serves it: see portal.invitations.search
        query = query.where(search_index.contains(search))
    if status in STATUS_BY_KEY:
        query = query.where(_status_clause(STATUS_BY_KEY[status], utcnow()))
    if flow_id:
        query = query.where(Invitation.flow_id == flow_id)
    if creator_id:
        query = query.where(Invitation.created_by_id == creator_id)
    if flow_ids is not None:
        query = query.where(Invitation.flow_id.in_(flow_ids))
    column = SORTS.get(sort.lstrip("-"), Invitation.created_at)
    order = column.desc() if sort.startswith("-") else column.asc()
    return query.order_by(order, Invitation.id.desc())


def creators_query(flow_ids: set[int] | None = None, tenant=None):
    """The accounts that created an invitation this admin may see (the list's "created by"
    choices): other namespaces' admins are not theirs to learn about. One probe of
    ix_invitations_creator per account, not a DISTINCT over every invitation."""
    created = select(Invitation.id).where(Invitation.created_by_id == User.id,
                                          visible(Invitation, tenant))
    if flow_ids is not None:
        created = created.where(Invitation.flow_id.in_(flow_ids))
    return select(User).where(created.exists()).order_by(User.username)


def latest_emails(invitation_ids: Sequence[int]) -> dict[int, OutboxMessage]:
    """The newest outbox message of each invitation, in one query (for the list's mail column)."""
    if not invitation_ids:
        return {}
    newest = (
        select(func.max(OutboxMessage.id)).where(OutboxMessage.invitation_id.in_(invitation_ids))
        .group_by(OutboxMessage.invitation_id)
    )
    rows = db.session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(newest)))
    return {row.invitation_id: row for row in rows}


def attributes_as_yaml(attributes: dict) -> str:
    """Attributes as the admin edits them."""
    if not attributes:
        return ""
    return yaml.safe_dump(attributes, sort_keys=False, allow_unicode=True)


def links_csv(invitations: Iterable[Invitation], base_url: str) -> Iterable[str]:
    """name, email, expires, link of each invitation, as CSV lines."""
    from ..csv_export import csv_lines

    return csv_lines(("name", "email", "expires_at", "link"), (
        (i.name, i.email or "", i.expires_at.isoformat() if i.expires_at else "",
         invitation_link(i, base_url)) for i in invitations
    ))


# -- existing accounts accept ---------------------------------------------------------------------
# A person who already has an account takes an invitation's access instead of enrolling: from
# the invitation link while signed in (the flow executor), after signing in through the
# authentication flow, or from their account page's list. Every path calls these functions.

ACCEPT_RETRIES = 5
BUSY = Refusal("busy", "Please try again", "The server is busy; try again in a moment.", 503)


@dataclass(frozen=True)
class Granted:
    """What an Accept gave: the groups the account joined now (it may have held others)."""

    groups: list[Group]


def acceptance_refusal(invitation: Invitation | None, user: User, *, flow: Flow | None = None,
                       token_supplied: bool = True) -> Refusal | None:
    """Whether this existing account may accept this invitation now; None means it may.

    The enrollment rules first, the very same function (refusal_for: unknown link, another flow,
    revoked, expired, used up), then what only an existing account needs: a recipient-bound
    invitation is for the account whose *verified* address is that one, and an account takes
    an invitation once."""
    if invitation is None:
        return refusal_for(None, flow, token_supplied=token_supplied)
    refusal = refusal_for(invitation, flow or invitation.flow, token_supplied=token_supplied)
    if refusal:
        return refusal
    if invitation.email and not same_email(verified_email(user), invitation.email):
        return REFUSALS["not_your_address"]
    if _used_by(user, invitation):
        return REFUSALS["already_accepted"]
    return None


def _used_by(user: User, invitation: Invitation) -> bool:
    return bool(db.session.scalar(select(exists().where(
        InvitationUse.invitation_id == invitation.id, InvitationUse.user_id == user.id))))


def grant_access(user: User, invitation: Invitation, *, flow: Flow | None = None,
                 ip: str | None = None) -> Granted | Refusal:
    """Give an existing account the access an invitation carries and consume one of its uses,
    in one transaction, exactly once: the groups, the InvitationUse, the audit event.

    The same guarded UPDATE as enrollment (`redeem`) decides between people racing for the
    last use; the unique (invitation, user) index decides between two Accepts of one account
    (two tabs, two workers). The loser's transaction is rolled back whole. `flow`: the flow
    whose link was opened (None: the invitation's own, as on the account page). What is given
    (membership of the invitation's tenant, its groups, its direct roles) is
    tenants.grant_invitation_access, as for a new account."""
    flow = flow or invitation.flow
    for _ in range(ACCEPT_RETRIES):
        refusal = acceptance_refusal(invitation, user, flow=flow)
        if refusal:
            return refusal
        db.session.commit()  # the guarded UPDATE must be the transaction's first write
        try:
            return _grant(user, invitation, flow, ip)
        except (OperationalError, IntegrityError):
            # SQLite busy, or this account's other Accept won: roll back (the use too) and ask
            # again; the check above then says why.
            db.session.rollback()
    return BUSY


def _grant(user: User, invitation: Invitation, flow: Flow, ip: str | None) -> Granted | Refusal:
    if not redeem(invitation.id, flow.id):
        db.session.rollback()
        return refusal_for(invitation, flow, token_supplied=True) or REFUSALS[InvitationStatus.USED_UP.value]
    from .. import tenants

    joined = [g for g in invitation.groups if g not in user.groups]
    tenants.grant_invitation_access(user, invitation, flow=flow)  # tenant, groups, direct roles
    db.session.add(InvitationUse(invitation_id=invitation.id, user_id=user.id))
    db.session.flush()  # IntegrityError: the account's other Accept was first
    db.session.execute(delete(InvitationDecline).where(  # accepted after all
        InvitationDecline.invitation_id == invitation.id, InvitationDecline.user_id == user.id))
    record_event(Action.INVITATION_ACCEPTED, actor=user, ip=ip, obj=invitation,
                 detail={"user": user.username, "flow": flow.slug,
                         "groups": [g.name for g in joined]})
    db.session.commit()
    return Granted(groups=joined)


def decline(user: User, invitation: Invitation, *, ip: str | None = None) -> None:
    """The account says no. Nothing is consumed and the link keeps working (they may change
    their mind); the invitation leaves their account page's list, and the log says so."""
    declined = db.session.scalar(select(exists().where(
        InvitationDecline.invitation_id == invitation.id, InvitationDecline.user_id == user.id)))
    if not declined:
        db.session.add(InvitationDecline(invitation_id=invitation.id, user_id=user.id))
    record_event(Action.INVITATION_DECLINED, actor=user, ip=ip, obj=invitation,
                 detail={"user": user.username})
    try:
        db.session.commit()
    except IntegrityError:  # declined in two tabs at once: one is kept
        db.session.rollback()


PENDING_LIST_LIMIT = 50


def pending_for(user: User) -> list[Invitation]:
    """The invitations addressed to this account's verified address that it may still accept
    (valid now, not used by it, not declined by it), newest first: its account page's list.
    An account without a verified address has none (anyone may type any address)."""
    address = verified_email(user)
    if address is None:
        return []
    query = (
        select(Invitation)
        .where(func.lower(Invitation.email).in_({normalise_email(address), address.strip().lower()}),
               *_valid_clause(utcnow()),
               ~exists().where(InvitationUse.invitation_id == Invitation.id,
                               InvitationUse.user_id == user.id),
               ~exists().where(InvitationDecline.invitation_id == Invitation.id,
                               InvitationDecline.user_id == user.id))
        .options(selectinload(Invitation.flow), selectinload(Invitation.created_by),
                 selectinload(Invitation.groups).selectinload(Group.roles))
        .order_by(Invitation.id.desc()).limit(PENDING_LIST_LIMIT)
    )
    return [i for i in db.session.scalars(query) if same_email(i.email, address)]


def pending_invitation(user: User, invitation_id: int) -> Invitation | None:
    """One of the account's pending invitations (pending_for), or None: what the account page
    may accept or decline by id."""
    return next((i for i in pending_for(user) if i.id == invitation_id), None)


MEMBER, ACCOUNT = "member", "account"  # what account_notes says of an invited address


def account_notes(addresses: Iterable[str], grants) -> dict[str, str]:
    """What the admin creating invitations (`grants`) is told of the addresses that already
    belong to an account, as given (compared as normalise_email): MEMBER when it is a member of
    the current tenant, ACCOUNT when it is an account elsewhere on the instance. The one rule of
    who learns what: nothing to an admin who may not see accounts (access.may_see_accounts),
    only the tenant's own members to a tenant admin (other tenants' accounts are not theirs to
    learn), everything to an instance superadmin."""
    from ..access import may_see_accounts
    from ..tenants import current_tenant, in_instance

    if not may_see_accounts(grants):
        return {}
    wanted = {normalise_email(a): a for a in addresses if a}
    if not wanted:
        return {}
    lowered = {a.strip().lower() for a in wanted.values()} | set(wanted)
    # On an instance page there is no tenant to be a member of: every account is ACCOUNT.
    here = None if in_instance() else current_tenant().id
    members = select(tenant_members.c.user_id).where(tenant_members.c.tenant_id == here)
    found = {normalise_email(email): MEMBER if member else ACCOUNT
             for email, member in db.session.execute(
                 select(User.email, User.id.in_(members)).where(func.lower(User.email).in_(lowered)))}
    notes = {address: found[key] for key, address in wanted.items() if key in found}
    if not grants.superuser:
        notes = {address: note for address, note in notes.items() if note == MEMBER}
    return notes
