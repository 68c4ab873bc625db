"""Stages of every type: the form is built from the type's declared options (no per-type code)."""

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from ..access import check_flow_change
from ..extensions import db
from ..flows import editor
from ..flows.stages import STAGE_TYPES
from ..models import FlowStageBinding, Stage
from ..numbers import db_int
from ..tenants import visible
from . import bp, grants, manage_flows, tenant_get_or_404
from .editing import confirm_delete
from .stage_forms import FormNeeds, stage_form


def _form_for(kind: str, stage: Stage | None = None):
    stage_type = STAGE_TYPES.get(kind) or abort(404)
    return stage_form(stage_type, FormNeeds(grants()), instance=stage)


def _check_new_options(kind: str, form, stage: Stage | None = None) -> None:
    """The privilege ceiling, on the stage as the form would leave it (a transient copy)."""
    after = Stage(type=kind, name=form.name.data, options=form.options(stage.options if stage else {}))
    check_flow_change(grants(), stages=[stage] if stage else [], adding=[after])


def _save(stage: Stage, form) -> None:
    form.apply(stage)
    db.session.commit()


@bp.route("/stages/")
@manage_flows
def stages():
    used = dict(db.session.execute(
        select(FlowStageBinding.stage_id, func.count(FlowStageBinding.id))
        .group_by(FlowStageBinding.stage_id)).all())
    rows = db.session.scalars(select(Stage).where(visible(Stage)).order_by(Stage.name)).all()
    return render_template("admin/stages/list.html", stages=rows, used=used, types=STAGE_TYPES)


@bp.route("/stages/new")
@manage_flows
def stage_types():
    return render_template("admin/stages/types.html", types=STAGE_TYPES)


@bp.route("/stages/new/<kind>", methods=["GET", "POST"])
@manage_flows
def stage_create(kind: str):
    form = _form_for(kind)
    if form.validate_on_submit():
        _check_new_options(kind, form)
        stage = Stage(type=kind, options={})
        db.session.add(stage)
        _save(stage, form)
        flash(f"Stage “{stage.name}” created.", "success")
        flow_id = request.args.get("flow", type=db_int)
        if flow_id:
            return redirect(url_for("admin.binding_create", flow_id=flow_id, stage=stage.id))
        return redirect(url_for("admin.stages"))
    return render_template("admin/stages/form.html", form=form, stage=None, kind=kind,
                           label=STAGE_TYPES[kind].label)


@bp.route("/stages/<int:stage_id>/edit", methods=["GET", "POST"])
@manage_flows
def stage_edit(stage_id: int):
    stage = tenant_get_or_404(Stage, stage_id, edit=True)
    if stage.type not in STAGE_TYPES:
        abort(404)
    check_flow_change(grants(), stages=[stage])  # it, and every flow using it, within the ceiling
    form = _form_for(stage.type, stage)
    if request.method == "GET":
        form.load(stage)
    if form.validate_on_submit():
        _check_new_options(stage.type, form, stage)
        _save(stage, form)
        flash("Stage saved.", "success")
        return redirect(url_for("admin.stages"))
    return render_template("admin/stages/form.html", form=form, stage=stage, kind=stage.type,
                           label=STAGE_TYPES[stage.type].label, used_by=editor.stage_usage(stage))


@bp.route("/stages/<int:stage_id>/delete", methods=["GET", "POST"])
@manage_flows
def stage_delete(stage_id: int):
    stage = tenant_get_or_404(Stage, stage_id, edit=True)
    check_flow_change(grants(), stages=[stage])
    return confirm_delete(
        stage, what="stage", name=stage.name, used_by=editor.stage_usage(stage),
        consequence="It is removed from every flow that uses it.",
        cancel=url_for("admin.stage_edit", stage_id=stage.id), done=url_for("admin.stages"))
