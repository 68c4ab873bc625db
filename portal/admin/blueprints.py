"""Flows → Import (upload → preview → apply) and a flow's export as authentik blueprint YAML.

The previewed YAML travels to the apply step in a hidden field of a CSRF-protected form and is
parsed and checked again there: the preview is advice, the apply step trusts nothing.
"""

from __future__ import annotations

from flask import Response, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileSize
from sqlalchemy import select
from werkzeug.utils import secure_filename
from wtforms import HiddenField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, ValidationError

from ..audit import record_import
from ..extensions import db
from ..flows.blueprints import MAX_BLUEPRINT_BYTES, BlueprintError, export_flow, import_blueprint
from ..models import Flow
from ..tenants import visible
from . import bp, client_ip, grants, manage_flows, tenant_get_or_404


class BlueprintUploadForm(FlaskForm):
    file = FileField(
        "Blueprint file",
        validators=[FileAllowed(["yaml", "yml"], "Choose a .yaml or .yml file."),
                    FileSize(MAX_BLUEPRINT_BYTES, message=f"The file is larger than "
                                                          f"{MAX_BLUEPRINT_BYTES // 1024} kB.")],
        description="An authentik blueprint, such as flows-enrollment-2-stage.yaml.",
    )
    text = TextAreaField(
        "Or paste the YAML", validators=[Length(max=MAX_BLUEPRINT_BYTES)],
        render_kw={"rows": 10, "spellcheck": "false", "class": "mono"},
    )
    submit = SubmitField("Preview")

    def validate_file(self, field):
        upload = field.data
        if not upload or not getattr(upload, "filename", ""):
            return
        try:
            self.yaml_text = upload.read().decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError("The file is not UTF-8 text.") from None

    def validate_text(self, field):
        if not getattr(self, "yaml_text", None) and not (field.data or "").strip():
            raise ValidationError("Choose a file or paste a blueprint.")

    @property
    def blueprint(self) -> str:
        return getattr(self, "yaml_text", None) or self.text.data or ""


class BlueprintApplyForm(FlaskForm):
    blueprint = HiddenField(validators=[DataRequired(), Length(max=MAX_BLUEPRINT_BYTES)])
    submit = SubmitField("Apply")


def _flows():
    return db.session.scalars(select(Flow).where(visible(Flow)).order_by(Flow.name)).all()


@bp.route("/flows/import", methods=["GET", "POST"])
@manage_flows
def blueprint_import():
    form = BlueprintUploadForm()
    if form.validate_on_submit():
        text = form.blueprint
        report = import_blueprint(text, actor=grants(), dry_run=True)
        if report.ok:
            return render_template("admin/blueprints/preview.html", report=report,
                                   form=BlueprintApplyForm(blueprint=text))
        form.text.data = text  # keep what was sent, so the admin can correct it
        return render_template("admin/blueprints/import.html", form=form, report=report,
                               flows=_flows()), 422
    return render_template("admin/blueprints/import.html", form=form, report=None, flows=_flows())


@bp.route("/flows/import/apply", methods=["POST"])
@manage_flows
def blueprint_apply():
    form = BlueprintApplyForm()
    if not form.validate_on_submit():
        flash("Nothing to apply: upload the blueprint again.", "error")
        return redirect(url_for("admin.blueprint_import"))
    report = import_blueprint(form.blueprint.data, actor=grants())
    if not report.ok:  # the database changed since the preview, or the field was altered
        upload = BlueprintUploadForm(formdata=None, text=form.blueprint.data)
        return render_template("admin/blueprints/import.html", form=upload, report=report,
                               flows=_flows()), 422
    flash(f"Blueprint imported: {report.summary()}.", "success")
    flows = db.session.scalars(select(Flow).where(visible(Flow), Flow.slug.in_(report.flow_slugs))
                               .order_by(Flow.name)).all()
    record_import(flows, report, actor=current_user, ip=client_ip())
    return render_template("admin/blueprints/result.html", report=report, flows=flows)


@bp.route("/flows/<int:flow_id>/export")
@manage_flows
def blueprint_export(flow_id: int):
    flow = tenant_get_or_404(Flow, flow_id)
    try:
        text = export_flow(flow)
    except BlueprintError as exc:
        flash(f"The flow cannot be exported: {exc}", "error")
        return redirect(url_for("admin.blueprint_import"))
    filename = secure_filename(f"{flow.slug}.yaml") or "flow.yaml"
    return Response(text, mimetype="application/yaml",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
