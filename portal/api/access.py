"""Groups and roles over the API (read): what scripts need to invite with the right groups."""

from __future__ import annotations

from flask_smorest import Blueprint
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ..access import ACCESS_MANAGE, INVITATIONS_MANAGE, USERS_MANAGE, assignable_groups
from ..extensions import db
from ..models import Group, Role, user_groups
from ..tenants import tenant_get, visible
from . import schemas as s
from .auth import caller, require
from .problems import ApiError

blp = Blueprint("api_access", __name__, url_prefix="/",
                description="Groups and roles (read only).")


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
