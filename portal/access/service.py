"""Groups and roles as commands: create, change, delete, with the privilege ceiling and the audit
event. The admin's access pages and the API both call these, so one rule holds on both paths.

Refusals are AccessError(field, message): the field is the form field (or API field) the
message belongs to, so the page shows it beside what was typed and the API as a field error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy.exc import IntegrityError

from ..audit import Action, record_event
from ..extensions import db
from ..models import Group, Role, User
from . import PERMISSIONS, Grants
from .ceiling import group_change_refusal, role_change_refusal


class AccessError(ValueError):
    """A group or role command refused; `field` names what the message is about."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


def clean_namespaces(namespaces: Iterable[str]) -> list[str]:
    """Namespaces as stored: stripped, no empty ones, no repeats, in the order given."""
    found: list[str] = []
    for namespace in namespaces:
        namespace = (namespace or "").strip()
        if namespace and namespace not in found:
            found.append(namespace)
    return found


def _sentence(refusal: str) -> str:
    """group_change_refusal answers in a clause (the importer embeds it); pages show a sentence."""
    return refusal[0].upper() + refusal[1:] + ("" if refusal.endswith(".") else ".")


def _flush_named(what: str) -> None:
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise AccessError("name", f"A {what} with this name exists.") from None


def save_role(grants: Grants, role: Role | None, *, name: str, description: str = "",
              permissions: Sequence[str], namespaces: Iterable[str], groups: Sequence[Group],
              actor: User | None, ip: str | None) -> Role:
    """Create (`role` None) or change a role: nobody hands out, or takes away, access they do
    not hold (role_change_refusal). Committed with its role.saved event."""
    name = (name or "").strip()
    if not name:
        raise AccessError("name", "Give the role a name.")
    permissions = [p for p in permissions if p in PERMISSIONS]
    if not permissions:
        raise AccessError("permissions", "Choose at least one permission.")
    namespaces = clean_namespaces(namespaces)
    refusal = role_change_refusal(grants, role, permissions=permissions, namespaces=namespaces,
                                  groups=groups)
    if refusal:
        raise AccessError("permissions", refusal)
    role = role or Role()
    role.name, role.description = name, (description or "").strip()
    role.permissions, role.namespaces, role.groups = permissions, namespaces, list(groups)
    db.session.add(role)
    _flush_named("role")
    record_event(Action.ROLE_SAVED, actor=actor, ip=ip, obj=role,
                 detail={"permissions": role.permissions, "namespaces": role.namespaces,
                         "groups": [g.name for g in role.groups]})
    db.session.commit()
    return role


def delete_role(grants: Grants, role: Role, *, actor: User | None, ip: str | None) -> None:
    """Delete a role: taking away access is changing it, so the same ceiling (the role within
    what the admin holds, every group it is bound to one they may give)."""
    refusal = role_change_refusal(grants, role, permissions=[], namespaces=[], groups=[])
    if refusal:
        raise AccessError("permissions", refusal)
    record_event(Action.ROLE_DELETED, actor=actor, ip=ip, obj=role,
                 detail={"permissions": role.permissions, "namespaces": role.namespaces,
                         "groups": [g.name for g in role.groups]})
    db.session.flush()
    db.session.delete(role)
    db.session.commit()


def save_group(grants: Grants, group: Group | None, *, name: str, is_superuser: bool,
               roles: Sequence[Role] | None = None, actor: User | None,
               ip: str | None) -> Group:
    """Create (`group` None) or change a group, and with `roles` the roles bound to it.

    The group's own rule is group_change_refusal; binding or unbinding a role changes that
    role's groups, so each role whose binding changes passes role_change_refusal as well (a
    new group is flushed first: it grants nothing yet, so it is one the admin may give)."""
    name = (name or "").strip()
    if not name:
        raise AccessError("name", "Give the group a name.")
    refusal = group_change_refusal(grants, group, make_superuser=is_superuser)
    if refusal:
        raise AccessError("is_superuser", _sentence(refusal))
    group = group or Group(attributes={})
    group.name, group.is_superuser = name, is_superuser
    db.session.add(group)
    _flush_named("group")
    if roles is not None:
        before, after = set(group.roles), set(roles)
        for role in sorted(before ^ after, key=lambda r: r.name):
            bound = [g for g in role.groups if g is not group] + ([group] if role in after else [])
            refusal = role_change_refusal(grants, role, permissions=role.permissions or [],
                                          namespaces=role.namespaces or [], groups=bound)
            if refusal:
                db.session.rollback()
                raise AccessError("roles", refusal)
        group.roles = list(roles)
        db.session.flush()
    record_event(Action.GROUP_SAVED, actor=actor, ip=ip, obj=group,
                 detail={"superuser": bool(group.is_superuser),
                         "roles": [r.name for r in group.roles]})
    db.session.commit()
    return group


def delete_group(grants: Grants, group: Group, *, actor: User | None, ip: str | None) -> None:
    """Delete a group (its members lose what it granted; their accounts stay)."""
    refusal = group_change_refusal(grants, group, make_superuser=False)
    if refusal:
        raise AccessError("is_superuser", _sentence(refusal))
    record_event(Action.GROUP_DELETED, actor=actor, ip=ip, obj=group,
                 detail={"roles": [r.name for r in group.roles]})
    db.session.flush()
    db.session.delete(group)
    db.session.commit()
