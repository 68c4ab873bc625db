"""SSO sources (OpenID Connect): list, create, change, delete. Superusers only: a source
decides who may sign in as whom. The rules live in portal.sources.service."""

from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select

from ..extensions import db
from ..models import Flow, OIDCSource
from ..sources import service
from ..sources.routes import redirect_uri
from . import admins_only, bp, client_ip
from .forms import ConfirmForm, SourceForm


@bp.route("/sources/")
@admins_only
def sources():
    return render_template("admin/sources/list.html", sources=service.all_sources())


@bp.route("/sources/new", methods=["GET", "POST"])
@bp.route("/sources/<int:source_id>", methods=["GET", "POST"])
@admins_only
def source_edit(source_id: int | None = None):
    source = db.get_or_404(OIDCSource, source_id) if source_id is not None else None
    flows = db.session.scalars(select(Flow).order_by(Flow.slug)).all()
    form = SourceForm(obj=source, flows=flows)
    if source is not None and not form.is_submitted():
        form.client_secret.data = ""  # write-only
    if form.validate_on_submit():
        values = {key: form[key].data for key in (*service.FIELDS, "client_secret")}
        values["scopes"] = " ".join(str(values["scopes"] or "").split())
        problems = service.source_problems(values, source=source)
        for key, messages in problems.items():
            form[key].errors = [*form[key].errors, *messages]
        if not problems:
            saved = service.save_source(source, values, actor=current_user._get_current_object(),
                                        ip=client_ip())
            flash(f"Source {saved.name} saved. Register {redirect_uri(saved)} as its redirect "
                  "URI at the provider.", "success")
            return redirect(url_for("admin.source_edit", source_id=saved.id))
    return render_template("admin/sources/form.html", form=form, source=source,
                           callback=redirect_uri(source) if source else None,
                           delete_form=ConfirmForm())


@bp.route("/sources/<int:source_id>/delete", methods=["POST"])
@admins_only
def source_delete(source_id: int):
    source = db.get_or_404(OIDCSource, source_id)
    if ConfirmForm().validate_on_submit():
        service.delete_source(source, actor=current_user._get_current_object(), ip=client_ip())
        flash(f"Source {source.name} deleted; its linked identities are unlinked.", "success")
    return redirect(url_for("admin.sources"))
