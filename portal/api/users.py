"""Users over the API: list, get, create directly (Kestra's "skip invitation"), change (name,
address, groups in this tenant), remove from this tenant, deactivate and activate, memberships.
The same services (auth.service) and the same ceiling (account_change_refusal) as the admin's
user pages."""

from __future__ import annotations

from flask import current_app, url_for
from flask_smorest import Blueprint
from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from ..access import USERS_MANAGE, is_superuser
from ..auth import service as accounts
from ..extensions import db
from ..models import Invitation, InvitationUse, User
from ..pagination import LastPageKnowsTheTotal
from ..tenants import current_tenant, tenant_get, visible
from ..urls import base_url
from . import schemas as s
from .auth import require
from .invitations import _deliver, _groups
from .problems import ApiError, field_error

blp = Blueprint("api_users", __name__, url_prefix="/users",
                description="Users: list, create directly, deactivate, memberships.")


def _manager():
    return require(USERS_MANAGE, everywhere=True)


def shape(user: User) -> dict:
    return {"id": user.id, "username": user.username, "name": user.name or "",
            "email": user.email or "", "active": bool(user.active),
            "superuser": is_superuser(user), "type": user.type, "created_at": user.created_at,
            "last_login": user.last_login,
            "groups": [g for g in user.groups if g.tenant_id == current_tenant().id]}


def _get(user_id: int) -> User:
    user = tenant_get(User, user_id)  # another tenant's people are as if they did not exist
    if user is None:
        raise ApiError(404, "No such user.")
    return user


@blp.route("/")
@blp.arguments(s.UserListArgs, location="query")
@blp.response(200, s.UserPage)
def list_users(args):
    """Users, newest first; `q` searches username, email and name."""
    _manager()
    query = (select(User).where(visible(User)).options(selectinload(User.groups))
             .order_by(User.created_at.desc(), User.id.desc()))
    if args["q"].strip():
        like = f"%{args['q'].strip().lower()}%"
        query = query.where(or_(func.lower(User.username).like(like),
                                func.lower(User.email).like(like), func.lower(User.name).like(like)))
    page, per_page = args["page"], args["per_page"]
    result = LastPageKnowsTheTotal(select=query, session=db.session(), per_page=per_page,
                                   page=min(page, 2**62 // per_page), error_out=False)
    return {"items": [shape(u) for u in result.items], "page": page, "per_page": per_page,
            "total": result.total or 0}


@blp.route("/<int:user_id>")
@blp.response(200, s.UserSchema)
def get_user(user_id: int):
    _manager()
    return shape(_get(user_id))


@blp.route("/", methods=["POST"])
@blp.arguments(s.UserCreate)
@blp.response(201, s.UserCreated)
def create_user(data):
    """Create the account now, without a password; it gets a one-time link to set one (emailed
    when a mail server is set, else returned here once)."""
    who = _manager()
    groups = _groups(who, data["groups"])
    try:
        user, link, message_id = accounts.create_user_directly(
            username=data["username"], email=data["email"], name=data["name"], groups=groups,
            created_by=who.user, ip=who.ip,
            link_for=lambda token: f"{base_url()}{url_for('auth.set_password', token=token)}",
            lifetime=current_app.config["INVITATION_EXPIRE_AFTER_DELTA"])
    except accounts.AccountError as exc:
        db.session.rollback()
        raise ApiError(409, str(exc), title="Conflict",
                       errors=[{"field": "username", "location": "json", "message": str(exc)}]) from None
    if message_id is not None:
        _deliver([message_id])
    return {**shape(user), "set_password_link": link if message_id is None else None}


def _set_active(user_id: int, active: bool):
    who = _manager()
    user = _get(user_id)
    try:
        accounts.set_active(user, active, actor=who.user, ip=who.ip, grants=who.grants)
    except accounts.AccountError as exc:
        raise ApiError(403, str(exc)) from None
    return shape(user)


@blp.route("/<int:user_id>/deactivate", methods=["POST"])
@blp.response(200, s.UserSchema)
def deactivate_user(user_id: int):
    """Deactivate the account: it is signed out everywhere, and its API tokens stop working."""
    return _set_active(user_id, False)


@blp.route("/<int:user_id>/activate", methods=["POST"])
@blp.response(200, s.UserSchema)
def activate_user(user_id: int):
    return _set_active(user_id, True)


@blp.route("/<int:user_id>", methods=["PATCH"])
@blp.arguments(s.UserUpdate)
@blp.response(200, s.UserSchema)
def update_user(data, user_id: int):
    """Change the name, the address (it is no longer verified) or the groups in this tenant
    (replaces them; other tenants' groups stay); what is left out stays."""
    who = _manager()
    user = _get(user_id)
    groups = _groups(who, data["groups"]) if "groups" in data else None
    try:
        accounts.update_account(user, actor=who.user, grants=who.grants, ip=who.ip,
                                name=data.get("name"), email=data.get("email"), groups=groups)
    except accounts.AccountError as exc:
        db.session.rollback()
        if exc.field:
            raise field_error(exc.field, str(exc)) from None
        raise ApiError(403, str(exc)) from None
    return shape(user)


@blp.route("/<int:user_id>", methods=["DELETE"])
@blp.response(204)
def remove_user(user_id: int):
    """Remove the person from this tenant: membership, groups and roles held here. The account
    itself stays (it may belong to other tenants)."""
    who = _manager()
    try:
        accounts.remove_from_tenant(_get(user_id), actor=who.user, grants=who.grants, ip=who.ip)
    except accounts.AccountError as exc:
        db.session.rollback()
        raise ApiError(403, str(exc)) from None


@blp.route("/<int:user_id>/memberships")
@blp.response(200, s.MembershipSchema)
def user_memberships(user_id: int):
    """The user's groups, and the invitations they enrolled with."""
    _manager()
    user = _get(user_id)
    uses = db.session.scalars(select(InvitationUse).options(selectinload(InvitationUse.invitation))
                              .join(InvitationUse.invitation)
                              .where(InvitationUse.user_id == user.id, visible(Invitation))
                              .order_by(InvitationUse.used_at)).all()
    return {"groups": shape(user)["groups"],
            "invitation_uses": [{"invitation_id": u.invitation_id,
                                 "invitation_name": u.invitation.name if u.invitation else "",
                                 "used_at": u.used_at} for u in uses]}
