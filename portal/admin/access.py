"""Access: groups and the roles bound to them (named sets of permissions, maybe per namespace)."""

from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from ..access import ACCESS_MANAGE, PERMISSIONS, group_change_refusal, role_change_refusal
from ..audit import Action, record_event
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
        permissions = [p for p in form.permissions.data if p in PERMISSIONS]
        namespaces = split_addresses(form.namespaces.data or "")
        chosen = [g for g in groups if g.id in set(form.groups.data)]
        # Nobody hands out, or takes away, access they do not hold (the privilege ceiling).
        refusal = role_change_refusal(grants(), role, permissions=permissions,
                                      namespaces=namespaces, groups=chosen)
        if refusal:
            form.permissions.errors.append(refusal)
        else:
            role = role or Role()
            role.name = form.name.data.strip()
            role.description = (form.description.data or "").strip()
            role.permissions = permissions
            role.namespaces = namespaces
            role.groups = chosen
            db.session.add(role)
            try:
                db.session.flush()
            except IntegrityError:
                db.session.rollback()
                form.name.errors.append("A role with this name exists.")
            else:
                record_event(Action.ROLE_SAVED, actor=current_user, ip=client_ip(), obj=role,
                             detail={"permissions": role.permissions, "namespaces": role.namespaces,
                                     "groups": [g.name for g in role.groups]})
                db.session.commit()
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
        # The same rule the blueprint importer applies to groups.
        refusal = group_change_refusal(grants(), group, make_superuser=form.is_superuser.data)
        if refusal:
            form.is_superuser.errors.append(refusal[0].upper() + refusal[1:] + ".")
        else:
            group = group or Group(attributes={})
            group.name = form.name.data.strip()
            group.is_superuser = form.is_superuser.data
            db.session.add(group)
            try:
                db.session.flush()
            except IntegrityError:
                db.session.rollback()
                form.name.errors.append("A group with this name exists.")
            else:
                record_event(Action.GROUP_SAVED, actor=current_user, ip=client_ip(), obj=group)
                db.session.commit()
                flash(f"Group “{group.name}” saved.", "success")
                return redirect(url_for("admin.access"))
    return render_template("admin/access/form.html", form=form, what="group", obj=group)
