"""Groups and roles over the API: read (what scripts need to invite with the right groups),
create, change and delete through portal.access.service, the same commands, ceiling and audit
events as the admin's access pages."""

from __future__ import annotations

from flask_smorest import Blueprint
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ..access import ACCESS_MANAGE, INVITATIONS_MANAGE, USERS_MANAGE, assignable_groups
from ..access import service as access_service
from ..extensions import db
from ..models import Group, Role, user_groups
from ..tenants import tenant_get, visible
from . import schemas as s
from .auth import caller, require
from .problems import ApiError, field_error

blp = Blueprint("api_access", __name__, url_prefix="/",
                description="Groups and roles: list, create, change, delete.")


def _may_list_groups():
    """Anyone who gives groups (invitations, users) or edits them may list them."""
    who = caller()
    if not any(who.grants.can(p) for p in (INVITATIONS_MANAGE, USERS_MANAGE, ACCESS_MANAGE)):
        raise ApiError(403, "Listing groups needs 'invitations:manage', 'users:manage' or "
                            "'access:manage'.")
    return who


def _groups_shaped(groups, who) -> list[dict]:
    counts = dict(db.session.execute(select(user_groups.c.group_id, func.count())
                                     .group_by(user_groups.c.group_id)).all())
    allowed = {g.id for g in assignable_groups(who.grants)}
    return [{"id": g.id, "name": g.name, "superuser": bool(g.is_superuser),
             "roles": [r.name for r in g.roles], "members": counts.get(g.id, 0),
             "assignable": g.id in allowed} for g in groups]


@blp.route("groups/")
@blp.response(200, s.GroupSchema(many=True))
def list_groups():
    """Every group, with whether you may give it."""
    who = _may_list_groups()
    groups = db.session.scalars(select(Group).options(selectinload(Group.roles))
                                .where(visible(Group)).order_by(Group.name)).all()
    return _groups_shaped(groups, who)


@blp.route("groups/<int:group_id>")
@blp.response(200, s.GroupSchema)
def get_group(group_id: int):
    who = _may_list_groups()
    group = tenant_get(Group, group_id)
    if group is None:
        raise ApiError(404, "No such group.")
    return _groups_shaped([group], who)[0]


@blp.route("roles/")
@blp.response(200, s.RoleSchema(many=True))
def list_roles():
    """Every role: its permissions, namespaces and groups."""
    require(ACCESS_MANAGE)
    return db.session.scalars(select(Role).options(selectinload(Role.groups))
                              .where(visible(Role)).order_by(Role.name)).all()


@blp.route("roles/<int:role_id>")
@blp.response(200, s.RoleSchema)
def get_role(role_id: int):
    require(ACCESS_MANAGE)
    role = tenant_get(Role, role_id)
    if role is None:
        raise ApiError(404, "No such role.")
    return role


# -- changes (Access: manage everywhere, as on the pages) ---------------------------------------


def _editor():
    return require(ACCESS_MANAGE, everywhere=True)


def _refused(exc: access_service.AccessError) -> ApiError:
    """A name clash is a 409; anything else the commands refuse (the ceiling) is a 422 naming
    the field, as the page shows it beside the field."""
    if exc.field == "name":
        return ApiError(409, str(exc), title="Conflict",
                        errors=[{"field": "name", "location": "json", "message": str(exc)}])
    return field_error({"is_superuser": "superuser"}.get(exc.field, exc.field), str(exc))


def _by_names(model, names, field: str) -> list:
    """This tenant's rows of `model` by name (case-insensitive); an unknown one is a field error."""
    if not names:
        return []
    found = {r.name.lower(): r for r in db.session.scalars(select(model).where(visible(model)))}
    chosen = []
    for index, name in enumerate(names):
        row = found.get(name.strip().lower())
        if row is None:
            raise field_error(f"{field}.{index}", f"There is no {model.__name__.lower()} {name!r}.")
        if row not in chosen:
            chosen.append(row)
    return chosen


def _group(group_id: int) -> Group:
    group = tenant_get(Group, group_id)
    if group is None:
        raise ApiError(404, "No such group.")
    return group


def _role(role_id: int) -> Role:
    role = tenant_get(Role, role_id)
    if role is None:
        raise ApiError(404, "No such role.")
    return role


def _save_group(who, group, data):
    roles = _by_names(Role, data["roles"], "roles") if "roles" in data else None
    try:
        saved = access_service.save_group(
            who.grants, group, name=data.get("name", group.name if group else ""),
            is_superuser=data.get("superuser", bool(group.is_superuser) if group else False),
            roles=roles, actor=who.user, ip=who.ip)
    except access_service.AccessError as exc:
        raise _refused(exc) from None
    return _groups_shaped([saved], who)[0]


@blp.route("groups/", methods=["POST"])
@blp.arguments(s.GroupCreate)
@blp.response(201, s.GroupSchema)
def create_group(data):
    """A group, with the roles bound to it (by name)."""
    return _save_group(_editor(), None, data)


@blp.route("groups/<int:group_id>", methods=["PATCH"])
@blp.arguments(s.GroupWrite)
@blp.response(200, s.GroupSchema)
def update_group(data, group_id: int):
    """Rename it, make it (or not) a superuser group, or bind other roles; what is left out
    stays."""
    who = _editor()
    return _save_group(who, _group(group_id), data)


@blp.route("groups/<int:group_id>", methods=["DELETE"])
@blp.response(204)
def delete_group(group_id: int):
    """Delete it: its members lose what it granted (their accounts stay)."""
    who = _editor()
    try:
        access_service.delete_group(who.grants, _group(group_id), actor=who.user, ip=who.ip)
    except access_service.AccessError as exc:
        raise _refused(exc) from None


def _save_role(who, role, data):
    groups = (_by_names(Group, data["groups"], "groups") if "groups" in data
              else list(role.groups) if role else [])
    try:
        return access_service.save_role(
            who.grants, role, name=data.get("name", role.name if role else ""),
            description=data.get("description", role.description if role else ""),
            permissions=data.get("permissions", role.permissions if role else []),
            namespaces=data.get("namespaces", role.namespaces if role else []),
            groups=groups, actor=who.user, ip=who.ip)
    except access_service.AccessError as exc:
        raise _refused(exc) from None


@blp.route("roles/", methods=["POST"])
@blp.arguments(s.RoleCreate)
@blp.response(201, s.RoleSchema)
def create_role(data):
    """A role: permissions, maybe limited to namespaces, bound to groups (by name)."""
    return _save_role(_editor(), None, data)


@blp.route("roles/<int:role_id>", methods=["PATCH"])
@blp.arguments(s.RoleWrite)
@blp.response(200, s.RoleSchema)
def update_role(data, role_id: int):
    """Change it; what is left out stays."""
    who = _editor()
    return _save_role(who, _role(role_id), data)


@blp.route("roles/<int:role_id>", methods=["DELETE"])
@blp.response(204)
def delete_role(role_id: int):
    """Delete it: whoever held it through a group, an invitation or directly loses it."""
    who = _editor()
    try:
        access_service.delete_role(who.grants, _role(role_id), actor=who.user, ip=who.ip)
    except access_service.AccessError as exc:
        raise _refused(exc) from None
