"""SSO sources (OpenID Connect): list, create, change, delete. A source decides who may sign in
as whom, so: a tenant's own sources are managed by its admins holding "access: manage" over the
whole tenant, under /t/<tenant>/admin/sources/; instance-wide ones by superadmins only. The
rules live in portal.sources.service."""

from flask import abort, flash, g, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select

from .. import tenants
from ..access import ACCESS_MANAGE
from ..extensions import db
from ..models import Flow
from ..sources import service
from ..sources.routes import redirect_uri
from . import bp, client_ip, grants, permission_required
from .forms import ConfirmForm, SourceForm

manage_sources = permission_required(ACCESS_MANAGE, everywhere=True)


def _source_or_404(source_id: int):
    source = service.source_for_admin(source_id, g.tenant, superadmin=grants().superuser)
    if source is None:
        abort(404)  # another tenant's source is as absent as a missing one
    return source


@bp.route("/sources/")
@manage_sources
def sources():
    return render_template("admin/sources/list.html", sources=service.sources_for_admin(
        g.tenant, superadmin=grants().superuser))


@bp.route("/sources/new", methods=["GET", "POST"])
@bp.route("/sources/<int:source_id>", methods=["GET", "POST"])
@manage_sources
def source_edit(source_id: int | None = None):
    source = _source_or_404(source_id) if source_id is not None else None
    superadmin = grants().superuser
    flows = db.session.scalars(select(Flow).where(tenants.visible(Flow)).order_by(Flow.slug)).all()
    form = SourceForm(obj=source, flows=flows)
    if not superadmin:
        del form.instance_wide  # a tenant admin's sources are the tenant's own
    elif source is not None and not form.is_submitted():
        form.instance_wide.data = source.tenant_id is None
    if source is not None and not form.is_submitted():
        form.client_secret.data = ""  # write-only
        form.group_map.data = service.format_group_map(source.group_map)
    if form.validate_on_submit():
        values = {key: form[key].data for key in (*service.FIELDS, "client_secret", "group_map")
                  if key != "tenant_id"}
        values["scopes"] = " ".join(str(values["scopes"] or "").split())
        wide = superadmin and form.instance_wide.data
        values["tenant_id"] = None if wide else g.tenant.id
        problems = service.source_problems(values, source=source, grants=grants())
        for key, messages in problems.items():
            form[key].errors = [*form[key].errors, *messages]
        if not problems:
            saved = service.save_source(source, values, actor=current_user._get_current_object(),
                                        ip=client_ip(), grants=grants())
            flash(f"Source {saved.name} saved. Register {redirect_uri(saved)} as its redirect "
                  "URI at the provider.", "success")
            return redirect(url_for("admin.source_edit", source_id=saved.id))
    return render_template("admin/sources/form.html", form=form, source=source,
                           callback=redirect_uri(source) if source else None,
                           delete_form=ConfirmForm())


@bp.route("/sources/<int:source_id>/delete", methods=["POST"])
@manage_sources
def source_delete(source_id: int):
    source = _source_or_404(source_id)
    if ConfirmForm().validate_on_submit():
        service.delete_source(source, actor=current_user._get_current_object(), ip=client_ip())
        flash(f"Source {source.name} deleted; its linked identities are unlinked.", "success")
    return redirect(url_for("admin.sources"))
