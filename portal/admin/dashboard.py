from flask import render_template
from sqlalchemy import func, select

from ..extensions import db
from ..invitations.service import pending_count, recent_uses
from ..models import Flow, User
from ..tenants import visible
from . import bp, permission_required
from .invitations import _allowed_flow_ids


@bp.route("/")
@permission_required(None)
def dashboard():
    # The same scope as the invitation list: an admin limited to some namespaces counts and sees
    # only those flows' invitations and enrollments; one without invitations:manage, none.
    flow_ids = _allowed_flow_ids()
    return render_template(
        "admin/dashboard.html",
        user_count=db.session.scalar(select(func.count(User.id)).where(visible(User))),
        flow_count=db.session.scalar(select(func.count(Flow.id)).where(visible(Flow))),
        pending_invitations=pending_count(flow_ids),
        recent_uses=recent_uses(flow_ids),
    )
