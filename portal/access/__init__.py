"""Permissions: what a user may do in the admin area of one tenant, from their groups' roles.

Superusers (or members of a superuser group) are instance superadmins: they may do everything,
in every tenant. Everyone else, in a tenant, gets the union of the permissions of that tenant's
roles bound to their groups there and of the roles they hold directly there (from an invitation,
each maybe narrowed to namespaces); nothing at all in an inactive tenant. Everyone else gets the union of
the permissions of the roles bound to their groups. A role limited to namespaces grants its
permissions only for flows in those namespaces; a namespace is a flow slug or a prefix of it
followed by "." or "-" (namespace "sales" covers flows "sales", "sales.emea" and "sales-eu").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import func, inspect, or_, select
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.attributes import set_committed_value

from ..extensions import db
from ..models import Group, MemberRole, Role, Tenant, User

INVITATIONS_MANAGE = "invitations:manage"
USERS_MANAGE = "users:manage"
FLOWS_MANAGE = "flows:manage"
ACCESS_MANAGE = "access:manage"
AUDIT_VIEW = "audit:view"

PERMISSIONS = {
    INVITATIONS_MANAGE: "Invitations: create, send, revoke and delete invitations",
    USERS_MANAGE: "Users: see users and create them directly",
    FLOWS_MANAGE: "Flows: edit, import and export flows",
    ACCESS_MANAGE: "Access: edit groups and roles",
    AUDIT_VIEW: "Audit log: read and export it",
}

ALL = None  # scope meaning "every namespace"
NOWHERE = "\x00none"  # a namespace no flow slug can be in: a limit outside the role's own


@dataclass
class Grants:
    """A user's effective permissions: permission -> namespaces (None: all namespaces)."""

    superuser: bool = False
    scopes: dict[str, set[str] | None] = field(default_factory=dict)

    def can(self, permission: str, namespace: str | None = None) -> bool:
        """May the user do this; with a namespace (a flow slug), for that flow."""
        if self.superuser:
            return True
        if permission not in self.scopes:
            return False
        scope = self.scopes[permission]
        if scope is ALL or namespace is None:
            return True
        return any(in_namespace(namespace, ns) for ns in scope)

    def can_everywhere(self, permission: str) -> bool:
        """May the user do this for every flow: needed for what flows share (stages, prompts)."""
        return self.superuser or (permission in self.scopes and self.scopes[permission] is ALL)

    @property
    def any_admin(self) -> bool:
        return self.superuser or bool(self.scopes)

    def namespaces(self, permission: str) -> set[str] | None:
        """None when the permission holds everywhere, else the namespaces it is limited to."""
        if self.superuser:
            return ALL
        return self.scopes.get(permission, set())


NAMESPACE_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


def namespace_problem(namespace: str) -> str | None:
    """Why `namespace` cannot be a namespace (flow slugs are lower-case letters, digits, - and _;
    a namespace may add dots, "sales.emea"), or None."""
    if not NAMESPACE_RE.match(namespace):
        return (f"“{namespace[:40]}” is not a namespace: use lower-case letters, digits and "
                f". - _ (at most 100), like “sales” or “sales.emea”.")
    return None


def in_namespace(slug: str, namespace: str) -> bool:
    namespace = namespace.strip()
    return bool(namespace) and (
        slug == namespace or slug.startswith(namespace + ".") or slug.startswith(namespace + "-")
    )


def grants_for(user: User | None, tenant: Tenant | None = None) -> Grants:
    """A user's grants in `tenant` (the current one), with one query over groups and roles and
    one over direct roles."""
    from ..tenants import current_tenant

    if user is None or not getattr(user, "is_authenticated", False) or not user.active:
        return Grants()
    if user.is_superuser:
        return Grants(superuser=True)
    groups = db.session.scalars(
        select(Group).join(Group.users).where(User.id == user.id).order_by(Group.name)
        .options(selectinload(Group.roles))
    ).all()
    account = user._get_current_object() if hasattr(user, "_get_current_object") else user
    if "groups" in inspect(account).unloaded:  # the list user.groups would load: keep it
        set_committed_value(account, "groups", groups)
    if is_superuser(user, groups):
        return Grants(superuser=True)
    tenant = tenant or current_tenant()
    grants = Grants()
    if not tenant.active:
        return grants
    for group in groups:
        if group.tenant_id == tenant.id:
            for role in group.roles:
                _add_role(grants, role, role.namespaces or [])
    for direct in db.session.scalars(select(MemberRole).options(selectinload(MemberRole.role)).where(
            MemberRole.user_id == user.id, MemberRole.tenant_id == tenant.id)):
        _add_role(grants, direct.role, direct_namespaces(direct.role, direct.namespaces))
    return grants


def _add_role(grants: Grants, role: Role, namespaces: list[str]) -> None:
    for permission in role.permissions or []:
        if permission not in PERMISSIONS:
            continue
        if not namespaces:
            grants.scopes[permission] = ALL
        elif grants.scopes.get(permission, set()) is not ALL:
            grants.scopes.setdefault(permission, set()).update(namespaces)


def direct_namespaces(role: Role, limit) -> list[str]:
    """The namespaces a role attached directly covers: its own, narrowed by the attachment's
    `limit` when one is given (a limit outside the role's own namespaces covers nothing of it)."""
    own, limit = list(role.namespaces or []), [n for n in (limit or []) if n.strip()]
    if not limit:
        return own
    if not own:
        return limit
    narrowed = [n for n in limit if any(in_namespace(n, o) for o in own)]
    return narrowed or [NOWHERE]


def shown_namespaces(role: Role, limit) -> list[str]:
    """direct_namespaces for a page: a limit outside the role's own (saved before the rule
    refused it) reads as what it is rather than as the marker."""
    covered = direct_namespaces(role, limit)
    return ["none (limited outside the role's own)"] if covered == [NOWHERE] else covered


def is_superuser(user: User, groups=None) -> bool:
    """Superuser by the account's own flag or through a superuser group (`groups`, when the
    caller has them loaded; else the user's). What pages show as "superuser" reads this."""
    groups = user.groups if groups is None else groups
    return bool(user.is_superuser) or any(g.is_superuser for g in groups)


def is_last_superuser(user: User) -> bool:
    """Is this account a superuser that no other active account could stand in for? The portal
    must always keep one (only a superuser can make another), so it is never deleted."""
    if not is_superuser(user):
        return False
    others = select(func.count(User.id)).where(
        User.id != user.id, User.active.is_(True),
        or_(User.is_superuser.is_(True), User.groups.any(Group.is_superuser.is_(True))))
    return not db.session.scalar(others)


def request_grants(user: User | None, tenant: Tenant | None = None) -> Grants:
    """grants_for(user, tenant) (the current tenant by default), computed once per request
    (kept on flask.g, per user and tenant)."""
    from flask import g, has_request_context

    if not has_request_context():
        return grants_for(user, tenant)
    from ..tenants import current_tenant

    tenant = tenant or current_tenant()
    key = (user.id if user is not None and getattr(user, "is_authenticated", False) else None,
           tenant.id)
    cache = g.setdefault("_grants_by_user", {})
    if key not in cache:
        cache[key] = grants_for(user, tenant)
    return cache[key]


def is_admin(user: User | None) -> bool:
    """May this user use the admin area at all: a superuser (flag or group) or anyone holding an
    admin permission through their groups' roles. The one answer for the home redirect, the
    navigation, the account page and the admin area's own guard. Outside an admin URL: in the
    person's home tenant (where the admin links lead)."""
    from ..tenants import acting_tenant

    return request_grants(user, acting_tenant(user)).any_admin


def may_see_accounts(grants: Grants) -> bool:
    """May these grants learn that an address has an account (the invitation forms' note, bulk's
    "has an account" rows, over the pages and the API)? Those who may list users everywhere."""
    return grants.can_everywhere(USERS_MANAGE)


def may_manage_account(actor: User | None, target: User) -> bool:
    """May `actor` change someone else's account (deactivate it, remove an authenticator)?
    Users: manage, and only an account within their ceiling (a superuser's only by a superuser):
    whoever could weaken a stronger admin's sign-in would hold more than their own permissions."""
    from .ceiling import account_change_refusal  # the one rule, with its reason

    return account_change_refusal(grants_for(actor), target) is None


def assignable_groups(grants: Grants) -> list[Group]:
    """Groups this admin may hand out on invitations and new users.

    Only the current tenant's groups. A superuser may give any of them. Anyone else only groups
    that grant nothing beyond their own permissions, so "invitations: manage" can never be
    turned into more access.
    """
    from ..tenants import visible

    groups = db.session.scalars(select(Group).options(selectinload(Group.roles))
                                .where(visible(Group)).order_by(Group.name)).all()
    if grants.superuser:
        return list(groups)
    return [g for g in groups if not g.is_superuser and all(role_within(grants, r) for r in g.roles)]


def givable_roles(grants: Grants) -> list[Role]:
    """Roles of the current tenant this admin may attach directly: any for a superuser; else
    those whose every permission they hold somewhere, so that the role, at least narrowed to
    the admin's own namespaces, grants nothing beyond them. Whether the namespaces chosen for
    it keep within the ceiling is ceiling.direct_role_problem's to say."""
    from ..tenants import visible

    roles = db.session.scalars(select(Role).where(visible(Role)).order_by(Role.name)).all()
    return [r for r in roles if grants.superuser or role_within(grants, r) or all(
        grants.namespaces(p) is ALL or grants.namespaces(p) for p in r.permissions or [])]


def may_assign(grants: Grants, group: Group | None) -> bool:
    """May this admin have `group` given to people (by an invitation or a flow's new users)?
    Only groups of the current tenant, whoever asks."""
    if group is None:
        return True
    if grants.superuser:
        from ..tenants import current_tenant

        return group.tenant_id == current_tenant().id
    return group.id in {g.id for g in assignable_groups(grants)}


def role_within(grants: Grants, role: Role) -> bool:
    return within(grants, role.permissions or [], role.namespaces or [])


def within(grants: Grants, permissions, namespaces) -> bool:
    """Would a role with these permissions and namespaces grant nothing beyond `grants`?"""
    for permission in permissions:
        mine = grants.namespaces(permission)
        if mine is ALL:
            continue
        if not namespaces or not mine or not all(
            any(in_namespace(ns, m) for m in mine) for ns in namespaces
        ):
            return False
    return True


# The privilege ceiling for every other path into a group (flows, invitations, blueprints).
from .ceiling import (  # noqa: E402  (it builds on the functions above)
    CeilingError,
    account_change_refusal,
    check_flow_change,
    check_flow_invitations,
    check_instance_invitation,
    check_invitation,
    ensure_within_ceiling,
    flow_groups,
    flow_within_ceiling,
    flows_within_ceiling,
    group_change_refusal,
    invitation_groups,
    invitation_refusals,
    role_change_refusal,
    stage_groups,
)

__all__ = [
    "ACCESS_MANAGE", "ALL", "AUDIT_VIEW", "FLOWS_MANAGE", "INVITATIONS_MANAGE", "PERMISSIONS",
    "USERS_MANAGE", "CeilingError", "Grants", "account_change_refusal", "assignable_groups",
    "givable_roles",
    "check_flow_change", "check_flow_invitations", "check_instance_invitation",
    "check_invitation", "ensure_within_ceiling", "flow_groups", "flow_within_ceiling",
    "flows_within_ceiling", "grants_for", "group_change_refusal", "in_namespace", "invitation_groups",
    "invitation_refusals", "may_assign", "role_change_refusal", "role_within", "stage_groups", "within",
]
