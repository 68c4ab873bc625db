"""Users: list, detail, deactivate, and "create user directly (skip invitation)"."""

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from .. import mfa, tenants
from ..access import USERS_MANAGE, assignable_groups, givable_roles, may_manage_account
from ..auth import service as accounts
from ..extensions import db
from ..mail.web import deliver_after_response
from ..models import Invitation, InvitationUse, MemberRole, TOTPDevice, User
from ..pagination import paginate
from ..sources.service import all_sources
from ..tenants import visible
from ..urls import base_url
from . import bp, client_ip, grants, permission_required, tenant_get_or_404
from .forms import AddMemberForm, ConfirmForm, DirectUserForm
from .instance import superadmins_only

PER_PAGE = 25
manage = permission_required(USERS_MANAGE, everywhere=True)


@bp.route("/users/")
@manage
def users():
    query = (select(User).options(selectinload(User.groups)).where(visible(User))
             .order_by(User.created_at.desc(), User.id.desc()))
    search = request.args.get("q", "").strip()
    if search:
        like = f"%{search.lower()}%"
        query = query.where(or_(func.lower(User.username).like(like),
                                func.lower(User.email).like(like),
                                func.lower(User.name).like(like)))
    page = paginate(query, per_page=PER_PAGE)
    return render_template("admin/users/list.html", page=page, search=search,
                           superadmin=grants().superuser)


@bp.route("/users/<int:user_id>")
@manage
def user_detail(user_id: int):
    user = tenant_get_or_404(User, user_id)
    uses = db.session.scalars(
        select(InvitationUse).options(selectinload(InvitationUse.invitation))
        .join(InvitationUse.invitation).where(visible(Invitation))  # this tenant's only
        .filter(InvitationUse.user_id == user.id)
    ).all()
    return render_template("admin/users/detail.html", user=user, uses=uses, action_form=ConfirmForm(),
                           devices=mfa.list_devices(user, confirmed_only=True),
                           may_manage=may_manage_account(current_user, user),
                           may_remove=grants().superuser, direct_roles=db.session.scalars(
                               select(MemberRole).options(selectinload(MemberRole.role)).where(
                                   MemberRole.user_id == user.id,
                                   MemberRole.tenant_id == tenants.current_tenant().id)).all())


@bp.route("/users/add-member", methods=["GET", "POST"])
@superadmins_only
def user_add_member():
    """An existing account joins this tenant with groups and direct roles, without an
    invitation. Superadmins only: picking by username or email tells whether an account
    exists, which no tenant admin may learn of accounts outside their tenant."""
    form = AddMemberForm(groups=assignable_groups(grants()), roles=givable_roles(grants()),
                         grants=grants())
    if form.validate_on_submit():
        user = tenants.find_account(form.account.data)
        if user is None:
            form.account.errors.append("No account has this username or email.")
        else:
            chosen = set(form.groups.data or [])
            try:
                tenants.add_existing_member(
                    user, groups=[g for g in assignable_groups(grants()) if g.id in chosen],
                    roles=form.direct_roles, actor=current_user, ip=client_ip())
            except tenants.TenantError as exc:
                getattr(form, exc.field, form.account).errors.append(str(exc))
            else:
                flash(f"{user.username} is now a member of {tenants.current_tenant().name}.",
                      "success")
                return redirect(url_for("admin.user_detail", user_id=user.id))
    return render_template("admin/users/add_member.html", form=form)


@bp.route("/users/<int:user_id>/remove-member", methods=["POST"])
@superadmins_only
def user_remove_member(user_id: int):
    """Out of this tenant: its membership, groups and direct roles here (the account stays)."""
    user = tenant_get_or_404(User, user_id)
    if ConfirmForm().validate_on_submit():
        try:
            tenants.remove_member(user, actor=current_user._get_current_object(), ip=client_ip())
        except tenants.TenantError as exc:
            flash(str(exc), "error")
            return redirect(url_for("admin.user_detail", user_id=user.id))
        flash(f"{user.username} is no longer a member of {tenants.current_tenant().name}.",
              "success")
    return redirect(url_for("admin.users"))


@bp.route("/users/<int:user_id>/authenticators/<int:device_id>/remove", methods=["POST"])
@manage
def user_remove_authenticator(user_id: int, device_id: int):
    """For a person who lost their phone and their recovery codes: they sign in with their
    password alone again, and can set up a new authenticator."""
    user = tenant_get_or_404(User, user_id)
    device = db.session.get(TOTPDevice, device_id)
    if device is None or device.user_id != user.id:
        return redirect(url_for("admin.user_detail", user_id=user.id))
    if ConfirmForm().validate_on_submit():
        try:
            mfa.remove_totp(device, actor=current_user._get_current_object(), ip=client_ip())
        except mfa.MFAPermissionError as exc:
            flash(str(exc), "error")
        else:
            flash(f"The authenticator “{device.name}” of {user.username} is removed.", "success")
    return redirect(url_for("admin.user_detail", user_id=user.id))


@bp.route("/users/<int:user_id>/deactivate", methods=["POST"], defaults={"active": False})
@bp.route("/users/<int:user_id>/activate", methods=["POST"], defaults={"active": True})
@manage
def user_set_active(user_id: int, active: bool):
    """Deactivating signs the person out everywhere at once (their sessions stop loading)."""
    user = tenant_get_or_404(User, user_id)
    if ConfirmForm().validate_on_submit():
        try:
            accounts.set_active(user, active, actor=current_user._get_current_object(), ip=client_ip())
        except accounts.AccountError as exc:
            flash(str(exc), "error")
        else:
            done = "active again" if active else "deactivated and signed out everywhere"
            flash(f"User {user.username} is {done}.", "success")
    return redirect(url_for("admin.user_detail", user_id=user.id))


@bp.route("/users/new", methods=["GET", "POST"])
@manage
def user_create():
    groups = assignable_groups(grants())
    sources = {str(s.id): s for s in all_sources() if s.enabled}
    form = DirectUserForm(groups=groups, sources=sources.values())
    if form.validate_on_submit():
        allowed = {g.id: g for g in groups}
        sso_source = sources.get(form.sign_in_with.data or "")
        try:
            user, link, message_id = accounts.create_user_directly(
                username=form.username.data, email=form.email.data, name=form.name.data or "",
                groups=[allowed[i] for i in form.groups.data if i in allowed],
                created_by=current_user, ip=client_ip(),
                link_for=lambda token: f"{base_url()}{url_for('auth.set_password', token=token)}",
                lifetime=current_app.config["INVITATION_EXPIRE_AFTER_DELTA"],
                sso_source=sso_source,
            )
        except accounts.AccountError as exc:
            form.username.errors.append(str(exc))
        else:
            if sso_source is not None:
                flash(f"User {user.username} created. They sign in with {sso_source.name} as "
                      f"{user.email}; no password and no link.", "success")
                return redirect(url_for("admin.user_detail", user_id=user.id))
            if message_id is not None:
                deliver_after_response([message_id])
                flash(f"User {user.username} created; a link to set their password is being "
                      f"emailed to {user.email}.", "success")
                return redirect(url_for("admin.user_detail", user_id=user.id))
            flash(f"User {user.username} created. No mail server is configured, so send them "
                  "this one-time link to set their password yourself.", "warning")
            return render_template("admin/users/created.html", user=user, link=link)
    return render_template("admin/users/form.html", form=form)
