from datetime import timedelta

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..invitations import service
from ..models import Flow, FlowDesignation, Invitation, InvitationUse, utcnow
from ..pagination import paginate
from ..urls import base_url
from . import admins_only, bp
from .forms import ConfirmForm, InvitationForm

PER_PAGE = 25


def _enrollment_flows():
    return db.session.scalars(
        select(Flow).filter_by(designation=FlowDesignation.ENROLLMENT).order_by(Flow.name)
    ).all()


def _get_invitation(invitation_id: int) -> Invitation:
    return db.get_or_404(Invitation, invitation_id,
                         options=[selectinload(Invitation.uses).selectinload(InvitationUse.user)])


@bp.route("/invitations/")
@admins_only
def invitations():
    search = request.args.get("q", "").strip()
    page = paginate(service.list_query(search), per_page=PER_PAGE)
    return render_template("admin/invitations/list.html", page=page, search=search,
                           status_of=service.status_of)


@bp.route("/invitations/new", methods=["GET", "POST"])
@admins_only
def invitation_create():
    form = InvitationForm(flows=_enrollment_flows())
    if request.method == "GET":
        expire_after: timedelta = current_app.config["INVITATION_EXPIRE_AFTER_DELTA"]
        form.expires.data = (utcnow() + expire_after).replace(tzinfo=None, second=0, microsecond=0)
    if form.validate_on_submit():
        invitation = service.create_invitation(
            name=form.name.data.strip(),
            flow=db.session.get(Flow, form.flow.data),
            expires_at=form.expires_at,
            attributes=form.attributes.parsed,
            single_use=form.single_use.data,
            created_by=current_user,
        )
        flash("Invitation created. Copy the link below and send it to the person you invite.",
              "success")
        return redirect(url_for("admin.invitation_detail", invitation_id=invitation.id))
    return render_template("admin/invitations/form.html", form=form, invitation=None)


@bp.route("/invitations/<int:invitation_id>")
@admins_only
def invitation_detail(invitation_id: int):
    invitation = _get_invitation(invitation_id)
    status = service.status_of(invitation)
    link = (
        service.invitation_link(invitation, base_url())
        if status is service.InvitationStatus.VALID else None
    )
    return render_template("admin/invitations/detail.html", invitation=invitation,
                           status=status, link=link, delete_form=ConfirmForm())


@bp.route("/invitations/<int:invitation_id>/edit", methods=["GET", "POST"])
@admins_only
def invitation_edit(invitation_id: int):
    invitation = _get_invitation(invitation_id)
    form = InvitationForm(flows=_enrollment_flows(), original_expiry=invitation.expires_at)
    if request.method == "GET":
        form.name.data = invitation.name
        form.flow.data = invitation.flow_id
        form.single_use.data = invitation.single_use
        form.attributes.data = service.attributes_as_yaml(invitation.attributes)
        if invitation.expires_at:
            form.expires.data = invitation.expires_at.replace(tzinfo=None, second=0, microsecond=0)
    if form.validate_on_submit():
        service.update_invitation(
            invitation,
            name=form.name.data.strip(),
            flow=db.session.get(Flow, form.flow.data),
            expires_at=form.expires_at,
            attributes=form.attributes.parsed,
            single_use=form.single_use.data,
        )
        flash("Invitation saved.", "success")
        return redirect(url_for("admin.invitation_detail", invitation_id=invitation.id))
    return render_template("admin/invitations/form.html", form=form, invitation=invitation)


@bp.route("/invitations/<int:invitation_id>/delete", methods=["GET", "POST"])
@admins_only
def invitation_delete(invitation_id: int):
    invitation = _get_invitation(invitation_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        name = invitation.name
        service.delete_invitation(invitation)
        flash(f"Invitation “{name}” deleted; its link no longer works.", "success")
        return redirect(url_for("admin.invitations"))
    return render_template("admin/confirm_delete.html", form=form, what="invitation",
                           name=invitation.name,
                           consequence="Its link stops working at once. Accounts created with "
                                       "it are kept.",
                           cancel=url_for("admin.invitation_detail", invitation_id=invitation.id))
