from flask import render_template
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..invitations.service import pending_count
from ..models import Flow, InvitationUse, User
from . import bp, permission_required


@bp.route("/")
@permission_required(None)
def dashboard():
    recent = db.session.scalars(
        select(InvitationUse)
        .options(selectinload(InvitationUse.user), selectinload(InvitationUse.invitation))
        .order_by(InvitationUse.used_at.desc())
        .limit(10)
    ).all()
    return render_template(
        "admin/dashboard.html",
        user_count=db.session.scalar(select(func.count(User.id))),
        flow_count=db.session.scalar(select(func.count(Flow.id))),
        pending_invitations=pending_count(),
        recent_uses=recent,
    )
