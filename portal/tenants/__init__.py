"""Tenants: which tenant a request acts in, what a tenant owns, and the tenant commands.

Knows nothing of HTTP beyond reading flask.g: the admin blueprint's URL processor puts the
tenant named in the URL there (`use_tenant`), and `current_tenant()` is the one answer to
"which tenant" for every layer below it. Outside an admin URL (the wizard, the CLI without
--tenant, services called on their own) the current tenant is the default one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, inspect, or_, select, true
from sqlalchemy.orm.attributes import set_committed_value

from ..extensions import db
from ..models import (
    DEFAULT_TENANT_SLUG,
    AuditEvent,
    Flow,
    Group,
    Invitation,
    MemberRole,
    Prompt,
    Role,
    Stage,
    Tenant,
    User,
    tenant_members,
)

# What belongs to exactly one tenant (tenant_id NOT NULL) ...
OWNED = (Group, Role, Invitation, AuditEvent)
# ... and what belongs to one tenant or, with tenant_id NULL, to the whole instance.
SHARED = (Flow, Stage, Prompt)

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# /api/v1/<slug>/... sits beside /api/v1/me/ and /api/v1/tenants/: a tenant named so would be
# shadowed there.
RESERVED_SLUGS = frozenset({"me", "tenants", "docs"})


class TenantError(ValueError):
    """A tenant command refused, with a message for the form (field: which one)."""

    def __init__(self, message: str, field: str = "slug") -> None:
        self.field = field
        super().__init__(message)


# -- which tenant -------------------------------------------------------------------------------


def _per_request(key, compute):
    """compute() once per request, kept on flask.g: one page asks "which tenants", "the default
    one" many times (the header, the navigation, the page itself, the API token form). Outside
    a request each call asks again; the writes below that change the answers forget them."""
    from flask import g, has_request_context

    if not has_request_context():
        return compute()
    answers = g.setdefault("_tenant_answers", {})
    if key not in answers:
        answers[key] = compute()
    return answers[key]


def forget_answers() -> None:
    """Tenants or memberships changed in this request: the next question asks the database."""
    from flask import g, has_app_context

    if has_app_context():
        g.pop("tenant_count", None)
        g.pop("_tenant_answers", None)


def default_tenant() -> Tenant:
    return _per_request("default", _default_tenant)


def _default_tenant() -> Tenant:
    tenant = db.session.scalar(select(Tenant).where(Tenant.slug == DEFAULT_TENANT_SLUG))
    if tenant is None:  # renamed slugs keep id order: the oldest tenant stands in
        tenant = db.session.scalar(select(Tenant).order_by(Tenant.id))
    return tenant


def by_slug(slug: str | None) -> Tenant | None:
    if not slug or len(slug) > 63:
        return None
    return db.session.scalar(select(Tenant).where(Tenant.slug == slug))


def use_tenant_named(slug: str | None) -> Tenant | None:
    """Make the tenant with this slug the current one (None if there is none), learning in the
    same statement how many tenants exist (the header asks; one query per admin page)."""
    from flask import g

    if not slug or len(slug) > 63:
        return None
    total = select(func.count(Tenant.id)).scalar_subquery()
    row = db.session.execute(select(Tenant, total).where(Tenant.slug == slug)).first()
    if row is None:
        return None
    use_tenant(row[0])
    g.tenant_count = row[1]
    return row[0]


def use_tenant(tenant: Tenant | None) -> None:
    """Make `tenant` the current one for the rest of this request (or app context)."""
    from flask import g

    g.tenant = tenant
    g.tenant_id = tenant.id if tenant is not None else None
    g.instance_scope = False


def use_instance() -> None:
    """Act on the instance itself for the rest of this request (the /instance/... pages of
    superadmins): rows made are of no tenant (invitations, audit events: tenant_id NULL), and
    `visible` shows only those (and the instance-wide flows)."""
    from flask import g

    g.tenant = None
    g.tenant_id = None
    g.instance_scope = True


def in_instance() -> bool:
    """Is this request acting on the instance (use_instance) rather than a tenant?"""
    from flask import g, has_app_context

    return has_app_context() and bool(g.get("instance_scope"))


def current_tenant() -> Tenant:
    """The one answer to "which tenant does this act in": the tenant of the admin URL being
    served, else the default tenant."""
    from flask import g, has_app_context

    if has_app_context() and g.get("tenant") is not None:
        return g.tenant
    return default_tenant()


def tenant_count() -> int:
    from flask import g, has_app_context

    if has_app_context() and g.get("tenant_count") is not None:
        return g.tenant_count
    return db.session.scalar(select(func.count(Tenant.id))) or 0


def is_member(user: User, tenant: Tenant) -> bool:
    return bool(db.session.scalar(select(func.count()).select_from(tenant_members).where(
        tenant_members.c.user_id == user.id, tenant_members.c.tenant_id == tenant.id)))


def tenants_for(user: User | None) -> list[Tenant]:
    """The tenants this person may switch to in the header: every tenant for a superadmin,
    else the active tenants they are a member of."""
    from ..access import request_grants

    if user is None or not getattr(user, "is_authenticated", False):
        return []

    def ask() -> list[Tenant]:
        query = select(Tenant).order_by(Tenant.name)
        if not request_grants(user, current_tenant()).superuser:  # (superadmin: everywhere)
            query = query.join(tenant_members, tenant_members.c.tenant_id == Tenant.id).where(
                tenant_members.c.user_id == user.id, Tenant.active.is_(True))
        return list(db.session.scalars(query))

    return list(_per_request(("tenants_for", user.id), ask))


def home_tenant(user: User | None, preferred_slug: str | None = None) -> Tenant:
    """Where /admin/... leads: the tenant last used (when still theirs), else their first."""
    choices = tenants_for(user)
    for tenant in choices:
        if tenant.slug == preferred_slug:
            return tenant
    default = default_tenant()
    if any(t.id == default.id for t in choices) or not choices:
        return default
    return choices[0]


LAST_TENANT_KEY = "tenant"  # the session remembers the tenant last used, for /admin/... links


def acting_tenant(user: User | None) -> Tenant:
    """The tenant a person's admin links lead to: the one of the admin URL being served, else
    their home tenant (the one they last used, kept in the session)."""
    from flask import g, has_request_context, session

    if has_request_context():
        if g.get("tenant") is not None:
            return g.tenant
        return home_tenant(user, session.get(LAST_TENANT_KEY))
    return current_tenant()


# -- what a tenant sees --------------------------------------------------------------------------


def visible(model, tenant: Tenant | None = None):
    """The WHERE clause for the rows of `model` a tenant sees: its own, and for flows, stages
    and prompts the instance-wide ones too. On an instance page (use_instance, no `tenant`
    given): the rows of no tenant, and every account."""
    if tenant is None and in_instance():
        if model is User:
            return true()
        if model in SHARED or model in OWNED:
            return model.tenant_id.is_(None)
        raise TypeError(f"{model.__name__} is not tenant-scoped")
    tenant_id = (tenant or current_tenant()).id
    if model is User:  # its members, and whoever holds one of its groups
        members = select(tenant_members.c.user_id).where(tenant_members.c.tenant_id == tenant_id)
        return or_(User.id.in_(members), User.groups.any(Group.tenant_id == tenant_id))
    if model in SHARED:
        return or_(model.tenant_id == tenant_id, model.tenant_id.is_(None))
    if model in OWNED:
        return model.tenant_id == tenant_id
    raise TypeError(f"{model.__name__} is not tenant-scoped")


def tenant_get(model, ident, tenant: Tenant | None = None):
    """The row of `model` with this id if the tenant may see it, else None: the one scoped
    lookup every view, import and command uses."""
    if ident is None:
        return None
    try:
        ident = int(ident)
    except (TypeError, ValueError):
        return None
    return db.session.scalar(select(model).where(model.id == ident, visible(model, tenant)))


def may_edit_shared(obj, superadmin: bool) -> bool:
    """Instance-wide flows, stages and prompts are read-only to everyone but superadmins."""
    return superadmin or getattr(obj, "tenant_id", None) is not None


# -- membership ------------------------------------------------------------------------------------


def add_member(user: User, tenant: Tenant | None = None) -> None:
    """Make `user` a member of `tenant` (the current one) unless they are; in the caller's
    transaction."""
    tenant = tenant or current_tenant()
    if user.id is None:
        db.session.flush()
    _join(user, {tenant.id}, new_account=False)


def _join(user: User, tenant_ids: set[int], *, new_account: bool) -> None:
    """Memberships of these tenants for `user` (flushed). A brand-new account has none yet, so
    they are inserted without asking (one statement); anyone else's are checked first."""
    if not new_account:
        tenant_ids = {t for t in tenant_ids if not db.session.scalar(
            select(func.count()).select_from(tenant_members).where(
                tenant_members.c.user_id == user.id, tenant_members.c.tenant_id == t))}
    if tenant_ids:
        forget_answers()
        db.session.execute(tenant_members.insert(),
                           [{"tenant_id": t, "user_id": user.id} for t in sorted(tenant_ids)])


def grant_direct_role(user: User, tenant: Tenant, role: Role, namespaces=(), *,
                      new_account: bool = False) -> None:
    """Give `user` `role` directly in `tenant`, limited to `namespaces` (empty: the role's).
    A brand-new account holds no role yet: nothing to read first."""
    row = None if new_account else db.session.get(MemberRole, (tenant.id, user.id, role.id))
    if row is None:
        db.session.add(MemberRole(tenant_id=tenant.id, user_id=user.id, role_id=role.id,
                                  namespaces=list(namespaces)))
    else:
        row.namespaces = sorted(set(row.namespaces or []) | set(namespaces)) if row.namespaces else []


def grant_invitation_access(user: User, invitation: Invitation | None, *, flow: Flow | None = None,
                            new_account: bool = False) -> None:
    """What an invitation gives, in the caller's transaction (enrollment's user write, or an
    existing account accepting): membership of the invitation's tenant, its groups, and the
    roles it attaches directly with their namespaces; an instance invitation (no tenant) gives
    no membership, only the account, and makes it a superadmin if it says so. Without an
    invitation (an open flow) the
    person joins the flow's tenant, or the default one for an instance-wide flow. A group of
    any tenant also makes its holder a member there.

    `new_account`: `user` was inserted in this very transaction (enrollment), so it has no
    memberships, direct roles or groups but those given before its insert: they are written
    without reading first. The same grants either way."""
    if user.id is None:
        db.session.flush()
    if new_account and "groups" in inspect(user).unloaded:
        # Flushed with no groups given: a new account's collection is empty, nothing to read.
        set_committed_value(user, "groups", [])
    tenant_ids: set[int] = set()
    if invitation is not None and invitation.tenant_id is None:
        if invitation.grants_superuser:
            user.is_superuser = True
    elif invitation is not None:
        tenant = invitation.tenant  # loaded with the invitation (invitations.grant_loads)
        tenant_ids.add(tenant.id)
        for group in invitation.groups:
            if group not in user.groups:
                user.groups.append(group)
        for direct in invitation.direct_roles:
            grant_direct_role(user, tenant, direct.role, direct.namespaces or [],
                              new_account=new_account)
    else:
        owner = db.session.get(Tenant, flow.tenant_id) if flow is not None and flow.tenant_id else None
        tenant_ids.add((owner or default_tenant()).id)
    _join(user, tenant_ids | {g.tenant_id for g in user.groups}, new_account=new_account)


def grants_summary(invitation: Invitation) -> dict:
    """What an invitation will grant, for the invitation page and the invitee's first page.
    An instance invitation (no tenant) grants an account on the instance, perhaps superadmin."""
    from ..access import shown_namespaces

    return {
        "instance": invitation.tenant_id is None,
        "superuser": bool(invitation.grants_superuser),
        "tenant": invitation.tenant.name if invitation.tenant is not None else "",
        "groups": [g.name for g in invitation.groups],
        "roles": [(d.role.name, shown_namespaces(d.role, d.namespaces)) for d in invitation.direct_roles],
        "invited_by": invitation.created_by.display_name if invitation.created_by else "",
    }


# -- tenant commands (superadmins) --------------------------------------------------------------


def check_slug(slug: str, *, tenant: Tenant | None = None) -> str:
    slug = (slug or "").strip().lower()
    if not SLUG_RE.match(slug):
        raise TenantError("Use lower-case letters, digits and hyphens (at most 63), like “team-a”.")
    if slug in RESERVED_SLUGS and (tenant is None or tenant.slug != slug):
        raise TenantError(f"“{slug}” is reserved (the API uses it); choose another slug.")
    clash = db.session.scalar(select(Tenant).where(Tenant.slug == slug))
    if clash is not None and clash is not tenant:
        raise TenantError(f"A tenant with the slug “{slug}” exists already.")
    return slug


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 150:
        raise TenantError("Give the tenant a name (at most 150 characters).", field="name")
    return name


def create_tenant(*, name: str, slug: str, actor: User | None = None, ip: str | None = None) -> Tenant:
    from ..audit import Action, record_event

    tenant = Tenant(name=check_name(name), slug=check_slug(slug), active=True)
    forget_answers()
    db.session.add(tenant)
    db.session.flush()
    record_event(Action.TENANT_CREATED, actor=actor, ip=ip, obj=tenant, tenant_id=tenant.id)
    db.session.commit()
    return tenant


def update_tenant(tenant: Tenant, *, name: str, slug: str, active: bool,
                  actor: User | None = None, ip: str | None = None) -> Tenant:
    from ..audit import Action, record_event

    tenant.name = check_name(name)
    tenant.slug = check_slug(slug, tenant=tenant)
    tenant.active = bool(active)
    forget_answers()
    record_event(Action.TENANT_UPDATED, actor=actor, ip=ip, obj=tenant, tenant_id=tenant.id,
                 detail={"active": tenant.active})
    db.session.commit()
    return tenant


@dataclass
class DeletionSummary:
    invitations: int
    groups: int
    roles: int
    members: int
    flows: int
    stages: int
    prompts: int


def deletion_summary(tenant: Tenant) -> DeletionSummary:
    """What deleting the tenant takes with it (accounts stay: they are instance-wide)."""
    def count(model):
        return db.session.scalar(select(func.count(model.id)).where(model.tenant_id == tenant.id)) or 0

    members = db.session.scalar(select(func.count()).select_from(tenant_members)
                                .where(tenant_members.c.tenant_id == tenant.id)) or 0
    return DeletionSummary(invitations=count(Invitation), groups=count(Group), roles=count(Role),
                           members=members, flows=count(Flow), stages=count(Stage),
                           prompts=count(Prompt))


def delete_tenant(tenant: Tenant, *, actor: User | None = None, ip: str | None = None) -> None:
    """Delete a tenant and everything it owns; its audit events go with it, so the deletion is
    recorded in the default tenant. The default tenant itself is never deleted."""
    from ..audit import Action, record_event

    if tenant.id == default_tenant().id:
        raise TenantError("The default tenant cannot be deleted.", field="")
    summary = deletion_summary(tenant)
    # Flows first (their invitations and bindings cascade), then what the ORM would not order.
    for model in (Invitation, Flow, Stage, Prompt, Group, Role, AuditEvent):
        for row in db.session.scalars(select(model).where(model.tenant_id == tenant.id)):
            db.session.delete(row)
        db.session.flush()
    record_event(Action.TENANT_DELETED, actor=actor, ip=ip, object_type="tenant",
                 object_repr=f"{tenant.name} ({tenant.slug})", tenant_id=default_tenant().id,
                 detail=vars(summary))
    db.session.delete(tenant)
    forget_answers()
    db.session.commit()


# -- members (superadmins and the CLI: they may see every account) -----------------------------


def find_account(identifier: str) -> User | None:
    """The account with this username, else with this email (either case-insensitive)."""
    identifier = (identifier or "").strip()
    if not identifier or len(identifier) > 320:
        return None
    lowered = identifier.lower()
    return (db.session.scalar(select(User).where(func.lower(User.username) == lowered))
            or db.session.scalar(select(User).where(func.lower(User.email) == lowered)
                                 .order_by(User.id).limit(1)))


def add_existing_member(user: User, *, groups=(), roles=(), actor: User | None = None,
                        ip: str | None = None) -> None:
    """Make an existing account a member of the current tenant, with these of its groups and
    these roles held directly, each limited to namespaces ([(Role, namespaces)]). One function
    for the users page and `flask tenants add-member`; both are superadmins' (a tenant admin
    must not learn which accounts exist elsewhere). A direct role passes the one rule
    (access.ceiling.direct_role_problem: well-formed namespaces within the role's own)."""
    from ..access import Grants
    from ..access.ceiling import direct_role_problem
    from ..audit import Action, record_event

    tenant = current_tenant()
    if is_member(user, tenant):
        raise TenantError(f"{user.username} is already a member of {tenant.name}.", field="account")
    for group in groups:
        if group.tenant_id != tenant.id:
            raise TenantError(f"The group “{group.name}” is not one of {tenant.name}'s.", field="groups")
    for role, namespaces in roles:
        problem = direct_role_problem(Grants(superuser=True), role, namespaces)
        if problem:
            raise TenantError(problem if role.name in problem else f"The role “{role.name}”: {problem}",
                              field="roles")
    add_member(user, tenant)
    for group in groups:
        if group not in user.groups:
            user.groups.append(group)
    for role, namespaces in roles:
        grant_direct_role(user, tenant, role, list(namespaces))
    record_event(Action.MEMBER_ADDED, actor=actor, ip=ip, obj=user, tenant_id=tenant.id,
                 detail={"groups": sorted(g.name for g in groups),
                         "roles": sorted([r.name, list(ns)] for r, ns in roles)})
    db.session.commit()


def remove_member(user: User, *, actor: User | None = None, ip: str | None = None) -> None:
    """Take an account out of the current tenant: its membership, its groups there and the
    roles it holds there directly (the account itself stays: it is instance-wide). Refused for
    the last superadmin when this tenant's group is what makes them one, and for anyone
    removing themselves out of admin."""
    from ..access import is_last_superuser
    from ..audit import Action, record_event

    tenant = current_tenant()
    here = [g for g in user.groups if g.tenant_id == tenant.id]
    if not is_member(user, tenant) and not here:
        raise TenantError(f"{user.username} is not a member of {tenant.name}.", field="account")
    stays_superuser = bool(user.is_superuser) or any(
        g.is_superuser for g in user.groups if g.tenant_id != tenant.id)
    if not stays_superuser and any(g.is_superuser for g in here) and is_last_superuser(user):
        raise TenantError(f"{user.username} is the last superadmin (through the group "
                          f"“{next(g.name for g in here if g.is_superuser)}”); make another "
                          "superadmin first.", field="account")
    if actor is not None and actor.id == user.id and not stays_superuser:
        raise TenantError("You cannot remove yourself from this tenant: you would lose the "
                          "access you are using. Ask another superadmin.", field="account")
    direct = list(db.session.scalars(select(MemberRole).where(
        MemberRole.user_id == user.id, MemberRole.tenant_id == tenant.id)))
    for group in here:
        user.groups.remove(group)
    for row in direct:
        db.session.delete(row)
    db.session.execute(tenant_members.delete().where(
        tenant_members.c.user_id == user.id, tenant_members.c.tenant_id == tenant.id))
    forget_answers()
    record_event(Action.MEMBER_REMOVED, actor=actor, ip=ip, obj=user, tenant_id=tenant.id,
                 detail={"groups": sorted(g.name for g in here),
                         "roles": sorted(r.role.name for r in direct)})
    db.session.commit()
