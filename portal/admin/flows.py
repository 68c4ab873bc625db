"""Flows and their stage bindings: list, create, edit, delete, reorder, conditions."""

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ..access import CeilingError, check_flow_change, check_flow_invitations
from ..extensions import db
from ..flows import editor
from ..flows.planner import describe_condition
from ..models import Flow, FlowStageBinding, Invitation, Stage
from ..numbers import db_int
from ..tenants import tenant_get, visible
from . import bp, grants, manage_flows, tenant_get_or_404
from .editing import confirm_delete
from .flow_forms import BindingForm, FlowForm
from .forms import ConfirmForm


def _stages():
    return db.session.scalars(select(Stage).where(visible(Stage)).order_by(Stage.name)).all()


def _binding(flow_id: int, binding_id: int) -> FlowStageBinding:
    """The binding, if this admin may change its flow (the privilege ceiling, else 403)."""
    flow = tenant_get_or_404(Flow, flow_id, edit=True)
    binding = db.get_or_404(FlowStageBinding, binding_id)
    if binding.flow_id != flow.id:
        abort(404)
    check_flow_change(grants(), flows=[binding.flow])
    return binding


def _changeable_flow(flow_id: int) -> Flow:
    """The flow, if this admin may change it: nothing it can assign is beyond their ceiling."""
    flow = tenant_get_or_404(Flow, flow_id, edit=True)
    check_flow_change(grants(), flows=[flow])
    return flow


@bp.route("/flows/")
@manage_flows
def flows():
    counts = dict(db.session.execute(
        select(FlowStageBinding.flow_id, func.count(FlowStageBinding.id))
        .group_by(FlowStageBinding.flow_id)).all())
    invitations = dict(db.session.execute(
        select(Invitation.flow_id, func.count(Invitation.id)).where(visible(Invitation))
        .group_by(Invitation.flow_id)).all())
    rows = db.session.scalars(select(Flow).where(visible(Flow)).order_by(Flow.name)).all()
    return render_template("admin/flows/list.html", flows=rows, counts=counts,
                           invitations=invitations)


@bp.route("/flows/new", methods=["GET", "POST"])
@manage_flows
def flow_create():
    form = FlowForm()
    if form.validate_on_submit():
        flow = Flow()
        db.session.add(flow)
        editor.update(flow, **form.values)
        flash(f"Flow “{flow.name}” created. Add its stages below.", "success")
        return redirect(url_for("admin.flow_detail", flow_id=flow.id))
    return render_template("admin/flows/form.html", form=form, flow=None)


@bp.route("/flows/<int:flow_id>")
@manage_flows
def flow_detail(flow_id: int):
    flow = db.session.scalar(
        select(Flow).where(Flow.id == flow_id, visible(Flow))
        .options(selectinload(Flow.bindings).selectinload(FlowStageBinding.stage))
    ) or abort(404)
    try:
        check_flow_change(grants(), flows=[flow])
        locked = None
    except CeilingError as exc:  # shown read-only, saying why
        locked = str(exc)
    return render_template("admin/flows/detail.html", flow=flow, action_form=ConfirmForm(),
                           describe=describe_condition, locked=locked)


@bp.route("/flows/<int:flow_id>/edit", methods=["GET", "POST"])
@manage_flows
def flow_edit(flow_id: int):
    flow = _changeable_flow(flow_id)
    form = FlowForm(obj=flow, instance=flow)
    if form.validate_on_submit():
        if form.values["slug"] != flow.slug:  # every link of its invitations changes
            check_flow_invitations(grants(), flow, doing="changing the slug of",
                                   new_slug=form.values["slug"])
        editor.update(flow, **form.values)
        flash("Flow saved.", "success")
        return redirect(url_for("admin.flow_detail", flow_id=flow.id))
    return render_template("admin/flows/form.html", form=form, flow=flow)


@bp.route("/flows/<int:flow_id>/delete", methods=["GET", "POST"])
@manage_flows
def flow_delete(flow_id: int):
    flow = _changeable_flow(flow_id)
    check_flow_invitations(grants(), flow, doing="deleting")  # they go with it
    return confirm_delete(
        flow, what="flow", name=flow.slug, used_by=editor.flow_usage(flow),
        consequence="Its stage bindings and every invitation for it are deleted too; their links "
                    "stop working. The stages and prompts themselves are kept.",
        cancel=url_for("admin.flow_detail", flow_id=flow.id), done=url_for("admin.flows"))


@bp.route("/flows/<int:flow_id>/bindings/new", methods=["GET", "POST"])
@manage_flows
def binding_create(flow_id: int):
    flow = _changeable_flow(flow_id)
    form = BindingForm(stages=_stages())
    if request.method == "GET":
        form.order.data = editor.next_order(flow)
        form.stage.data = request.args.get("stage", type=db_int)
    if form.validate_on_submit():
        stage = tenant_get(Stage, form.stage.data)
        check_flow_change(grants(), flows=[flow], adding=[stage])
        editor.add_binding(flow, stage, **form.binding_values)
        flash("Stage added to the flow.", "success")
        return redirect(url_for("admin.flow_detail", flow_id=flow.id))
    return render_template("admin/flows/binding.html", form=form, flow=flow, binding=None)


@bp.route("/flows/<int:flow_id>/bindings/<int:binding_id>/edit", methods=["GET", "POST"])
@manage_flows
def binding_edit(flow_id: int, binding_id: int):
    binding = _binding(flow_id, binding_id)
    form = BindingForm(stages=_stages())
    if request.method == "GET":
        form.load(binding)
    if form.validate_on_submit():
        stage = tenant_get(Stage, form.stage.data)
        check_flow_change(grants(), flows=[binding.flow], adding=[stage])
        editor.update(binding, stage=stage, **form.binding_values)
        flash("Binding saved.", "success")
        return redirect(url_for("admin.flow_detail", flow_id=flow_id))
    return render_template("admin/flows/binding.html", form=form, flow=binding.flow, binding=binding)


@bp.route("/flows/<int:flow_id>/bindings/<int:binding_id>/move/<direction>", methods=["POST"])
@manage_flows
def binding_move(flow_id: int, binding_id: int, direction: str):
    binding = _binding(flow_id, binding_id)
    if direction not in ("up", "down"):
        abort(404)
    if ConfirmForm().validate_on_submit():
        editor.move_binding(binding, -1 if direction == "up" else 1)
    else:
        flash("The form expired; try again.", "error")
    return redirect(url_for("admin.flow_detail", flow_id=flow_id) + f"#binding-{binding_id}")


@bp.route("/flows/<int:flow_id>/bindings/<int:binding_id>/delete", methods=["POST"])
@manage_flows
def binding_delete(flow_id: int, binding_id: int):
    binding = _binding(flow_id, binding_id)
    if ConfirmForm().validate_on_submit():
        name = binding.stage.name
        editor.delete(binding)
        flash(f"“{name}” removed from the flow (the stage itself is kept).", "success")
    return redirect(url_for("admin.flow_detail", flow_id=flow_id))
