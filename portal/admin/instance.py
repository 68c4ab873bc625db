"""Instance pages: the tenants themselves, the instance's invitations and audit log
(superadmins only), and the old /admin/... addresses.

These URLs name no tenant: they act on the instance. /instance/invitations/ and /instance/audit/
are the tenant pages' very views (portal/admin/invitations.py, audit.py) acting on the instance
(tenants.use_instance): what they list and make is of no tenant. /admin/... (links and bookmarks
from before tenants) lead to the same page in the person's home tenant.
"""

from functools import wraps

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField
from wtforms.validators import Length

from .. import tenants
from ..access import CeilingError, grants_for
from ..extensions import csrf, db
from ..models import Tenant
from .forms import ConfirmForm

bp = Blueprint("instance", __name__)


@csrf.exempt  # it changes nothing: the page it leads to checks the token of the POST it forwards
@bp.route("/admin/", defaults={"rest": ""}, methods=["GET", "HEAD", "POST"])
@bp.route("/admin/<path:rest>", methods=["GET", "HEAD", "POST"])
def legacy_admin(rest: str):
    """The same admin page in the person's home tenant (308 keeps a POST a POST)."""
    user = current_user if current_user.is_authenticated else None
    slug = tenants.acting_tenant(user).slug
    target = f"/t/{slug}/admin/{rest}"
    if request.query_string:
        target += "?" + request.query_string.decode("latin-1")
    return redirect(target, code=302 if request.method in ("GET", "HEAD") else 308)


def superadmins_only(view):
    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not grants_for(current_user).superuser:
            abort(403)
        return view(*args, **kwargs)

    return wrapped


class TenantForm(FlaskForm):
    name = StringField("Name", validators=[Length(max=150)])
    slug = StringField("Slug", validators=[Length(max=63)],
                       description="Part of every admin address of the tenant: /t/<slug>/admin/")
    active = BooleanField("Active", default=True,
                          description="An inactive tenant's invitations stop working and its "
                                      "members may not act in it.")


def _tenant_or_404(tenant_id: int) -> Tenant:
    return db.get_or_404(Tenant, tenant_id)


@bp.route("/instance/tenants/")
@superadmins_only
def tenant_list():
    rows = db.session.scalars(db.select(Tenant).order_by(Tenant.name)).all()
    return render_template("admin/tenants/list.html", tenants=rows,
                           summaries={t.id: tenants.deletion_summary(t) for t in rows},
                           default_id=tenants.default_tenant().id)


@bp.route("/instance/tenants/new", methods=["GET", "POST"])
@bp.route("/instance/tenants/<int:tenant_id>", methods=["GET", "POST"])
@superadmins_only
def tenant_edit(tenant_id: int | None = None):
    tenant = _tenant_or_404(tenant_id) if tenant_id else None
    form = TenantForm(obj=tenant)
    if form.validate_on_submit():
        try:
            if tenant is None:
                tenant = tenants.create_tenant(name=form.name.data, slug=form.slug.data,
                                               actor=current_user, ip=request.remote_addr)
                flash(f"Tenant “{tenant.name}” created.", "success")
            else:
                tenants.update_tenant(tenant, name=form.name.data, slug=form.slug.data,
                                      active=form.active.data, actor=current_user,
                                      ip=request.remote_addr)
                flash("Tenant saved.", "success")
            return redirect(url_for("instance.tenant_list"))
        except tenants.TenantError as error:
            db.session.rollback()
            getattr(form, error.field or "slug").errors.append(str(error))
    return render_template("admin/tenants/form.html", form=form, tenant=tenant)


@bp.route("/instance/tenants/<int:tenant_id>/delete", methods=["GET", "POST"])
@superadmins_only
def tenant_delete(tenant_id: int):
    tenant = _tenant_or_404(tenant_id)
    form = ConfirmForm()
    summary = tenants.deletion_summary(tenant)
    refusal = "The default tenant cannot be deleted." if tenant.id == tenants.default_tenant().id else None
    if form.validate_on_submit() and refusal is None:
        name = tenant.name
        tenants.delete_tenant(tenant, actor=current_user, ip=request.remote_addr)
        flash(f"Tenant “{name}” deleted.", "success")
        return redirect(url_for("instance.tenant_list"))
    return render_template("admin/tenants/delete.html", form=form, tenant=tenant, summary=summary,
                           refusal=refusal)


# -- the instance's invitations and audit log: the tenant pages' views, on the instance --------


def _on_instance(view):
    """A tenant admin view served for the instance: superadmins only (anyone else: 403, before
    anything is read), acting on no tenant."""
    @wraps(view)
    @superadmins_only
    def wrapped(*args, **kwargs):
        tenants.use_instance()
        return view(*args, **kwargs)

    return wrapped


def _mount_instance_pages() -> None:
    from . import audit, invitations

    get, both, post = ["GET"], ["GET", "POST"], ["POST"]
    pages = [
        ("/instance/invitations/", invitations.invitations, get),
        ("/instance/invitations/links.csv", invitations.invitations_links_csv, get),
        ("/instance/invitations/new", invitations.invitation_create, both),
        ("/instance/invitations/<int:invitation_id>", invitations.invitation_detail, get),
        ("/instance/invitations/<int:invitation_id>/edit", invitations.invitation_edit, both),
        ("/instance/invitations/<int:invitation_id>/delete", invitations.invitation_delete, both),
        ("/instance/invitations/<int:invitation_id>/revoke", invitations.invitation_revoke, post),
        ("/instance/invitations/<int:invitation_id>/<any(resend, extend):action>",
         invitations.invitation_expiry_action, both),
        ("/instance/invitations/<int:invitation_id>/emails/<int:message_id>/retry",
         invitations.invitation_email_retry, post),
        ("/instance/invitations/bulk-action", invitations.invitations_bulk_action, post),
        ("/instance/invitations/bulk", invitations.invitations_bulk, both),
        ("/instance/audit/", audit.audit_log, get),
        ("/instance/audit/export.csv", audit.audit_export, get),
    ]
    for rule, view, methods in pages:
        bp.add_url_rule(rule, view.__name__, _on_instance(view), methods=methods)


_mount_instance_pages()


@bp.errorhandler(CeilingError)
def _beyond_ceiling(error: CeilingError):
    from . import _beyond_ceiling as tenant_answer

    return tenant_answer(error)
