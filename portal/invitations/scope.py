"""Which invitations and flows an admin (or an API token) may reach: the rules the pages and the
API share. Grants come in (portal.access); no HTTP here. Everything is of the current tenant
(portal.tenants.visible): another tenant's invitations and flows are as if they did not exist.

A flow outside the admin's namespaces is as if it did not exist (InvitationNotFound: a 404),
while an invitation inside them whose groups go beyond their ceiling is visible but read-only
(CeilingError: a 403 naming the group).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..access import (
    INVITATIONS_MANAGE,
    CeilingError,
    Grants,
    assignable_groups,
    check_invitation,
    flows_within_ceiling,
    invitation_refusals,
)
from ..extensions import db
from ..models import Flow, FlowDesignation, Group, Invitation, InvitationUse, utcnow
from ..tenants import visible


class InvitationNotFound(LookupError):
    """No such invitation, or none this admin may see."""


def expiry_problem(expires_at: datetime | None, *, unchanged_from: datetime | None = None) -> str | None:
    """Why this expiry is refused, or None: it must lie in the future (an edit may keep the
    one it had, to the minute). The one rule for every form and the API."""
    if expires_at is None:
        return None
    if unchanged_from is not None and \
            unchanged_from.replace(second=0, microsecond=0) == expires_at.replace(second=0, microsecond=0):
        return None
    if expires_at <= utcnow():
        return "Choose a moment in the future."
    return None


def flow_allowed(grants: Grants, flow: Flow) -> bool:
    """Is this flow in the admin's namespaces for invitations?"""
    return grants.can(INVITATIONS_MANAGE, flow.slug)


def enrollment_flows(grants: Grants) -> list[Flow]:
    flows = db.session.scalars(
        select(Flow).filter_by(designation=FlowDesignation.ENROLLMENT).where(visible(Flow))
        .order_by(Flow.name)
    ).all()
    return [f for f in flows if flow_allowed(grants, f)]


def invitable_flows(grants: Grants) -> list[Flow]:
    """The enrollment flows an invitation by this admin may lead to: those in their namespaces
    whose every group they may give."""
    return flows_within_ceiling(grants, enrollment_flows(grants))


def allowed_flow_ids(grants: Grants) -> set[int] | None:
    """None when the admin may manage invitations of every flow."""
    if grants.namespaces(INVITATIONS_MANAGE) is None:
        return None
    return {f.id for f in db.session.scalars(select(Flow).where(visible(Flow)))
            if flow_allowed(grants, f)}


def check_flow_choice(grants: Grants, flow: Flow | None) -> None:
    """A flow named by hand (a crafted POST, an API call) that is in the admin's namespaces but
    beyond their ceiling is refused naming the group (CeilingError), not as an unknown choice."""
    if flow is not None and flow_allowed(grants, flow):
        check_invitation(grants, flow=flow)


def get_invitation(grants: Grants, invitation_id: int, *, to_manage: bool = True) -> Invitation:
    """The invitation if its flow is in the admin's namespaces (else InvitationNotFound);
    `to_manage`: and if every group it can lead to is within their ceiling (else CeilingError)."""
    invitation = db.session.scalar(
        select(Invitation).where(Invitation.id == invitation_id, visible(Invitation))
        .options(selectinload(Invitation.uses).selectinload(InvitationUse.user)))
    if invitation is None or not flow_allowed(grants, invitation.flow):
        raise InvitationNotFound(invitation_id)
    if to_manage:
        check_invitation(grants, invitation)
    return invitation


def groups_by_id(grants: Grants, ids: Iterable[int] | None) -> list[Group]:
    """The groups of these ids that the admin may give (others are left out: the form offered
    only those)."""
    allowed = {g.id: g for g in assignable_groups(grants)}
    return [allowed[i] for i in ids or [] if i in allowed]


def kept_groups(grants: Grants, invitation: Invitation, chosen: list[Group]) -> list[Group]:
    """An edit's groups: those chosen, plus the invitation's groups the admin could not have
    unticked (beyond what they may give, so never shown to them as choices)."""
    mine = {g.id for g in assignable_groups(grants)}
    return chosen + [g for g in invitation.groups if g.id not in mine]


def actionable(grants: Grants, ids: Iterable[int]) -> tuple[list[Invitation], dict[int | None, CeilingError]]:
    """For a bulk action: the chosen invitations in the admin's namespaces, without the ones
    beyond their ceiling, and the refusals of those left out."""
    ids = list(ids)
    # Forged ids of another tenant's invitations match nothing here.
    chosen = [i for i in db.session.scalars(select(Invitation).where(
        Invitation.id.in_(ids), visible(Invitation))) if flow_allowed(grants, i.flow)] if ids else []
    locked = invitation_refusals(grants, chosen)
    return [i for i in chosen if i.id not in locked], locked
