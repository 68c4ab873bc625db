from flask import render_template, request
from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..models import InvitationUse, User
from . import admins_only, bp

PER_PAGE = 25


@bp.route("/users/")
@admins_only
def users():
    query = select(User).options(selectinload(User.groups)).order_by(User.created_at.desc(), User.id.desc())
    search = request.args.get("q", "").strip()
    if search:
        like = f"%{search.lower()}%"
        query = query.where(or_(func.lower(User.username).like(like),
                                func.lower(User.email).like(like),
                                func.lower(User.name).like(like)))
    page = db.paginate(query, per_page=PER_PAGE, error_out=False)
    return render_template("admin/users/list.html", page=page, search=search)


@bp.route("/users/<int:user_id>")
@admins_only
def user_detail(user_id: int):
    user = db.get_or_404(User, user_id)
    uses = db.session.scalars(
        select(InvitationUse).options(selectinload(InvitationUse.invitation))
        .filter_by(user_id=user.id)
    ).all()
    return render_template("admin/users/detail.html", user=user, uses=uses)
