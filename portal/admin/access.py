"""Access: groups and the roles bound to them (named sets of permissions, maybe per namespace).
The rules (ceiling, names, audit) live in portal.access.service, which the API calls too."""

from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..access import ACCESS_MANAGE, PERMISSIONS
from ..access import service as access_service
from ..extensions import db
from ..models import Group, Role
from ..tenants import visible
from . import bp, client_ip, grants, permission_required, tenant_get_or_404
from .forms import GroupForm, RoleForm, split_addresses

manage = permission_required(ACCESS_MANAGE, everywhere=True)


def _groups():
    return db.session.scalars(select(Group).where(visible(Group)).order_by(Group.name)).all()


@bp.route("/access/")
@manage
def access():
    groups = db.session.scalars(
        select(Group).options(selectinload(Group.roles)).where(visible(Group)).order_by(Group.name)
    ).all()
    roles = db.session.scalars(
        select(Role).options(selectinload(Role.groups)).where(visible(Role)).order_by(Role.name)
    ).all()
    return render_template("admin/access/index.html", groups=groups, roles=roles,
                           permissions=PERMISSIONS)


@bp.route("/access/roles/new", methods=["GET", "POST"])
@bp.route("/access/roles/<int:role_id>", methods=["GET", "POST"])
@manage
def role_edit(role_id: int | None = None):
    role = tenant_get_or_404(Role, role_id) if role_id else None
    groups = _groups()
    form = RoleForm(obj=None, groups=groups)
    if role is not None and not form.is_submitted():
        form.name.data, form.description.data = role.name, role.description
        form.permissions.data = list(role.permissions)
        form.namespaces.data = ", ".join(role.namespaces)
        form.groups.data = [g.id for g in role.groups]
    if form.validate_on_submit():
        try:
            role = access_service.save_role(
                grants(), role, name=form.name.data, description=form.description.data or "",
                permissions=form.permissions.data, namespaces=split_addresses(form.namespaces.data or ""),
                groups=[g for g in groups if g.id in set(form.groups.data)],
                actor=current_user, ip=client_ip())
        except access_service.AccessError as exc:
            getattr(form, exc.field).errors.append(str(exc))
        else:
            flash(f"Role “{role.name}” saved.", "success")
            return redirect(url_for("admin.access"))
    return render_template("admin/access/form.html", form=form, what="role", obj=role)


@bp.route("/access/groups/new", methods=["GET", "POST"])
@bp.route("/access/groups/<int:group_id>", methods=["GET", "POST"])
@manage
def group_edit(group_id: int | None = None):
    group = tenant_get_or_404(Group, group_id) if group_id else None
    form = GroupForm(obj=group)
    if form.validate_on_submit():
        try:
            group = access_service.save_group(grants(), group, name=form.name.data,
                                              is_superuser=form.is_superuser.data,
                                              actor=current_user, ip=client_ip())
        except access_service.AccessError as exc:
            getattr(form, exc.field).errors.append(str(exc))
        else:
            flash(f"Group “{group.name}” saved.", "success")
            return redirect(url_for("admin.access"))
    return render_template("admin/access/form.html", form=form, what="group", obj=group)
