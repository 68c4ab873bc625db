"""Stages of every type: a form per type's options."""

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from ..access import assignable_groups
from ..extensions import db
from ..flows import editor
from ..flows.stages import STAGE_TYPES
from ..flows.stages.user_write import find_group
from ..models import FlowStageBinding, Group, Prompt, Stage
from ..numbers import db_int
from . import bp, grants, manage_flows
from .editing import confirm_delete
from .flow_forms import STAGE_FORMS, PromptStageForm, UserWriteStageForm


def _form_for(kind: str, stage: Stage | None = None):
    cls = STAGE_FORMS.get(kind) or abort(404)
    extra = {}
    if cls is PromptStageForm:
        extra["prompts"] = db.session.scalars(select(Prompt).order_by(Prompt.name)).all()
    if cls is UserWriteStageForm:
        extra["groups"] = _groups_for_new_users(stage)
    return cls(instance=stage, **extra)


def _groups_for_new_users(stage: Stage | None) -> list[Group]:
    """Groups the admin may give every new user; the stage's current one stays selectable, so
    an admin who could not choose it can still edit the stage's other options."""
    groups = assignable_groups(grants())
    current = find_group((stage.options or {}).get("create_users_group")) if stage else None
    if current is not None and current not in groups:
        groups = sorted([*groups, current], key=lambda g: g.name)
    return groups


def _save(stage: Stage, form) -> None:
    stage.name = form.name.data.strip()
    stage.options = form.options(stage.options)
    if isinstance(form, PromptStageForm):
        editor.save_prompt_stage_fields(stage, form.fields.data or [])
    db.session.commit()


@bp.route("/stages/")
@manage_flows
def stages():
    used = dict(db.session.execute(
        select(FlowStageBinding.stage_id, func.count(FlowStageBinding.id))
        .group_by(FlowStageBinding.stage_id)).all())
    rows = db.session.scalars(select(Stage).order_by(Stage.name)).all()
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
    stage = db.get_or_404(Stage, stage_id)
    if stage.type not in STAGE_FORMS:
        abort(404)
    form = _form_for(stage.type, stage)
    if request.method == "GET":
        form.load(stage)
    if form.validate_on_submit():
        _save(stage, form)
        flash("Stage saved.", "success")
        return redirect(url_for("admin.stages"))
    return render_template("admin/stages/form.html", form=form, stage=stage, kind=stage.type,
                           label=STAGE_TYPES[stage.type].label, used_by=editor.stage_usage(stage))


@bp.route("/stages/<int:stage_id>/delete", methods=["GET", "POST"])
@manage_flows
def stage_delete(stage_id: int):
    stage = db.get_or_404(Stage, stage_id)
    return confirm_delete(
        stage, what="stage", name=stage.name, used_by=editor.stage_usage(stage),
        consequence="It is removed from every flow that uses it.",
        cancel=url_for("admin.stage_edit", stage_id=stage.id), done=url_for("admin.stages"))
