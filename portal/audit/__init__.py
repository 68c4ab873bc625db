"""The audit log's service layer. It knows nothing of HTTP: views pass the actor and IP in."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta

from sqlalchemy import Select, delete, func, or_, select
from sqlalchemy.orm import selectinload

from ..csv_export import csv_lines
from ..extensions import db
from ..models import AuditEvent, User, utcnow


class Action:
    """Every action the log records; the admin page filters by these."""

    INVITATION_CREATED = "invitation.created"
    INVITATION_SENT = "invitation.sent"
    INVITATION_SEND_FAILED = "invitation.send_failed"
    INVITATION_USED = "invitation.used"
    INVITATION_REFUSED = "invitation.refused"
    INVITATION_ACCEPTED = "invitation.accepted"  # an existing account took the invitation's access
    INVITATION_DECLINED = "invitation.declined"  # an existing account said no (nothing consumed)
    INVITATION_REVOKED = "invitation.revoked"
    INVITATION_RESENT = "invitation.resent"
    INVITATION_EXTENDED = "invitation.extended"
    INVITATION_DELETED = "invitation.deleted"
    INVITATION_UPDATED = "invitation.updated"  # the edit form: what changed, grants before/after
    EMAIL_SENT = "email.sent"
    EMAIL_SEND_FAILED = "email.send_failed"
    USER_CREATED = "user.created"
    USER_UPDATED = "user.updated"  # a flow's user write, or an admin, changed an existing account
    USER_DELETED = "user.deleted"  # the person deleted their own account (an unenrollment flow)
    PASSWORD_SET = "user.password_set"  # noqa: S105 (an action name)
    PASSWORD_CHANGED = "user.password_changed"  # noqa: S105 (an action name)
    USER_DEACTIVATED = "user.deactivated"
    USER_ACTIVATED = "user.activated"
    USER_REMOVED = "user.removed_from_tenant"  # membership, groups and direct roles there
    SESSIONS_ENDED = "user.sessions_ended"
    SIGN_IN_SUCCEEDED = "sign_in.succeeded"
    SIGN_IN_FAILED = "sign_in.failed"
    FLOW_IMPORTED = "flow.imported"
    MFA_DEVICE_ADDED = "mfa.device_added"
    MFA_DEVICE_CONFIRMED = "mfa.device_confirmed"
    MFA_DEVICE_REMOVED = "mfa.device_removed"
    MFA_RECOVERY_CODES_GENERATED = "mfa.recovery_codes_generated"
    MFA_RECOVERY_CODE_USED = "mfa.recovery_code_used"
    MFA_VERIFICATION_FAILED = "mfa.verification_failed"
    ROLE_SAVED = "role.saved"
    GROUP_SAVED = "group.saved"
    ROLE_DELETED = "role.deleted"
    GROUP_DELETED = "group.deleted"
    API_TOKEN_CREATED = "api_token.created"  # noqa: S105 (an action name)
    API_TOKEN_REVOKED = "api_token.revoked"  # noqa: S105 (an action name)
    SOURCE_SAVED = "source.saved"
    SOURCE_DELETED = "source.deleted"
    SSO_SIGNED_IN = "sso.signed_in"  # a provider vouched for the person (sign-in or enrollment)
    SSO_FAILED = "sso.failed"  # the round trip ended without result; detail.reason says why
    SSO_LINKED = "sso.linked"
    SSO_UNLINKED = "sso.unlinked"
    SSO_GROUPS = "sso.groups"  # a source's group map added or removed groups (detail says which)
    TENANT_CREATED = "tenant.created"
    TENANT_UPDATED = "tenant.updated"
    TENANT_DELETED = "tenant.deleted"
    MEMBER_ADDED = "tenant.member_added"  # an existing account made a member (superadmin, CLI)
    MEMBER_REMOVED = "tenant.member_removed"

    @classmethod
    def all(cls) -> list[str]:
        return sorted(v for k, v in vars(cls).items() if k.isupper())


# The API token the current actor acts through (None: a page, the CLI, a flow). Set by the API
# for one request; every event recorded meanwhile names it, so the log tells a script's
# changes from the same person's clicks.
_acting_through: ContextVar[dict | None] = ContextVar("audit_acting_through", default=None)


@contextmanager
def acting_through(token_id: int, token_name: str) -> Iterator[None]:
    """Events recorded inside name this API token (its id and name) in their detail."""
    reset = _acting_through.set({"id": token_id, "name": token_name})
    try:
        yield
    finally:
        _acting_through.reset(reset)


def record_event(
    action: str,
    *,
    actor: User | None = None,
    ip: str | None = None,
    obj=None,
    object_type: str = "",
    object_repr: str = "",
    detail: dict | None = None,
    commit: bool = False,
    tenant_id: int | None = None,
) -> AuditEvent:
    """Add one event to the current transaction, so it is kept exactly when the change is.

    `obj` is any model instance (its table name, id and str are recorded); pass `object_type`
    and `object_repr` instead for something that has no row (a failed sign-in's login name).
    With `commit=True` the event is committed on its own (for events with no other change).
    The event belongs to `tenant_id`, else to the object's tenant (an invitation used in the
    wizard is logged in its tenant), else to the current tenant.
    """
    if obj is not None:
        if getattr(obj, "id", None) is None:
            db.session.flush()  # a new row needs its id before the event can point at it
        object_type = object_type or getattr(obj, "__tablename__", type(obj).__name__).rstrip("s")
        object_repr = object_repr or _describe(obj)
    token = _acting_through.get()
    if token is not None:
        detail = {**(detail or {}), "api_token": token}
    event = AuditEvent(
        action=action,
        actor_id=actor.id if actor is not None else None,
        actor_name=actor.username if actor is not None else "",
        ip_address=(ip or "")[:64],
        object_type=object_type,
        object_id=getattr(obj, "id", None),
        object_repr=object_repr[:500],
        detail=detail or {},
    )
    tenant_id = tenant_id or getattr(obj, "tenant_id", None)
    if tenant_id is not None:
        event.tenant_id = tenant_id
    db.session.add(event)
    if commit:
        db.session.commit()
    return event


REPEAT_WINDOW = timedelta(minutes=1)


def record_event_once(action: str, *, key: dict, ip: str | None = None, obj=None,
                      window: timedelta = REPEAT_WINDOW, **kwargs) -> AuditEvent | None:
    """Like record_event, but at most one event per (action, address, object, `key`) in each
    `window`: a flood of the same refusal from one address is one line, not one per request.

    `key` holds the detail entries that tell events apart (the reason and the flow, say); it is
    part of the recorded detail. Returns None when an event already stands for this one. Two
    requests at the very same moment may both write: the bound is per window, not exact.
    """
    object_id = getattr(obj, "id", None)
    same_object = AuditEvent.object_id.is_(None) if object_id is None else \
        AuditEvent.object_id == object_id
    recent = db.session.scalars(
        select(AuditEvent.detail).where(
            AuditEvent.action == action, AuditEvent.ip_address == (ip or "")[:64], same_object,
            AuditEvent.created_at >= utcnow() - window,
        ).limit(100)  # the window's rows from one address: few, as this very rule keeps them
    )
    if any(all((detail or {}).get(k) == v for k, v in key.items()) for detail in recent):
        return None
    detail = {**(kwargs.pop("detail", None) or {}), **key}
    return record_event(action, ip=ip, obj=obj, detail=detail, **kwargs)


def purge(older_than: timedelta) -> int:
    """Delete events older than this (retention); returns how many."""
    result = db.session.execute(delete(AuditEvent).where(AuditEvent.created_at < utcnow() - older_than))
    db.session.commit()
    return result.rowcount


def record_import(flows, report, *, actor: User | None = None, ip: str | None = None) -> None:
    """Log a blueprint import: one event per flow it touched (import_blueprint commits itself)."""
    for flow in flows:
        record_event(Action.FLOW_IMPORTED, actor=actor, ip=ip, obj=flow,
                     detail={"blueprint": report.name or "", "summary": report.summary()})
    db.session.commit()


def _describe(obj) -> str:
    for attr in ("name", "username", "slug", "subject"):
        value = getattr(obj, attr, None)
        if value:
            email = getattr(obj, "email", None)
            return f"{value} <{email}>" if email and attr == "name" else str(value)
    return repr(obj)


def events_query(*, action: str = "", actor: str = "", object_type: str = "", search: str = "",
                 since: datetime | None = None, until: datetime | None = None,
                 tenant=None) -> Select:
    """Events of one tenant (the current one) newest first, filtered as on the admin page."""
    from ..tenants import visible

    query = select(AuditEvent).options(selectinload(AuditEvent.actor)).where(
        visible(AuditEvent, tenant)).order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
    if action:
        query = query.where(
            AuditEvent.action == action if "." in action else AuditEvent.action.like(f"{action}.%")
        )
    if actor:
        query = query.where(func.lower(AuditEvent.actor_name) == actor.strip().lower())
    if object_type:
        query = query.where(AuditEvent.object_type == object_type)
    if search:
        like = f"%{search.strip().lower()}%"
        query = query.where(or_(func.lower(AuditEvent.object_repr).like(like),
                                AuditEvent.ip_address.like(like)))
    if since is not None:
        query = query.where(AuditEvent.created_at >= since)
    if until is not None:
        query = query.where(AuditEvent.created_at < until)
    return query


CSV_COLUMNS = ("time", "action", "actor", "ip_address", "object_type", "object_id", "object",
               "detail")


def export_csv(events: Iterable[AuditEvent]) -> Iterable[str]:
    """The events as CSV, streamed line by line."""
    return csv_lines(CSV_COLUMNS, (
        (e.created_at.isoformat(), e.action, e.actor_name, e.ip_address, e.object_type,
         e.object_id or "", e.object_repr,
         json.dumps(e.detail, sort_keys=True) if e.detail else "")
        for e in events
    ))
