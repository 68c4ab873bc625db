"""The admin area: one blueprint, one module per resource."""

from functools import wraps

from flask import Blueprint, abort
from flask_login import current_user, login_required

bp = Blueprint("admin", __name__, url_prefix="/admin")


def admins_only(view):
    """Superusers only; others are sent to sign in (anonymous) or refused (403)."""

    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not current_user.is_superuser:
            abort(403)
        return view(*args, **kwargs)

    return wrapped


from . import (  # noqa: E402,F401  (routes attach to bp)
    blueprints,
    dashboard,
    flows,
    invitations,
    prompts,
    stages,
    users,
)
