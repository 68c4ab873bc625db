"""Prompts: the fields prompt stages show."""

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..access import check_flow_change
from ..extensions import db
from ..flows import editor
from ..flows.prompts import PROMPT_TYPES
from ..models import Prompt
from ..tenants import visible
from . import bp, grants, manage_flows, tenant_get_or_404
from .editing import confirm_delete
from .flow_forms import PromptForm


@bp.route("/prompts/")
@manage_flows
def prompts():
    rows = db.session.scalars(
        select(Prompt).options(selectinload(Prompt.stages)).where(visible(Prompt)).order_by(Prompt.name)).all()
    return render_template("admin/prompts/list.html", prompts=rows, types=PROMPT_TYPES)


@bp.route("/prompts/new", methods=["GET", "POST"])
@manage_flows
def prompt_create():
    form = PromptForm()
    if form.validate_on_submit():
        prompt = Prompt(**form.values)
        db.session.add(prompt)
        db.session.commit()
        flash(f"Prompt “{prompt.name}” created. Add it to a prompt stage to show it.", "success")
        return redirect(url_for("admin.prompts"))
    return render_template("admin/prompts/form.html", form=form, prompt=None)


@bp.route("/prompts/<int:prompt_id>/edit", methods=["GET", "POST"])
@manage_flows
def prompt_edit(prompt_id: int):
    prompt = tenant_get_or_404(Prompt, prompt_id, edit=True)
    check_flow_change(grants(), prompts=[prompt])  # part of every flow that shows it
    form = PromptForm(instance=prompt)
    if request.method == "GET":
        form.load(prompt)
    if form.validate_on_submit():
        editor.update(prompt, **form.values)
        flash("Prompt saved.", "success")
        return redirect(url_for("admin.prompts"))
    return render_template("admin/prompts/form.html", form=form, prompt=prompt,
                           used_by=editor.prompt_usage(prompt))


@bp.route("/prompts/<int:prompt_id>/delete", methods=["GET", "POST"])
@manage_flows
def prompt_delete(prompt_id: int):
    prompt = tenant_get_or_404(Prompt, prompt_id, edit=True)
    check_flow_change(grants(), prompts=[prompt])
    return confirm_delete(
        prompt, what="prompt", name=prompt.name, used_by=editor.prompt_usage(prompt),
        consequence="It disappears from every prompt stage that shows it.",
        cancel=url_for("admin.prompt_edit", prompt_id=prompt.id), done=url_for("admin.prompts"))
