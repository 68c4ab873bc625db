"""The admin area: one blueprint, one module per resource, each view guarded by a permission."""

from functools import wraps

from flask import Blueprint, abort, request
from flask_login import current_user, login_required

from ..access import FLOWS_MANAGE, CeilingError, Grants, is_admin, request_grants

bp = Blueprint("admin", __name__, url_prefix="/admin")


def grants() -> Grants:
    """The signed-in user's permissions, computed once per request."""
    return request_grants(current_user if current_user.is_authenticated else None)


def permission_required(permission: str | None, *, everywhere: bool = False):
    """Only users holding `permission` (any admin permission when None); superusers hold all.

    With `everywhere`, a role limited to namespaces is not enough: for pages whose objects are
    not confined to one namespace (stages and prompts are shared by flows). Anonymous visitors
    are sent to sign in; others are refused with 403.
    """

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if permission is None:
                allowed = is_admin(current_user)
            elif everywhere:
                allowed = grants().can_everywhere(permission)
            else:
                allowed = grants().can(permission)
            if not allowed:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


# Flows, stages, prompts and blueprints: stages and prompts are shared between flows and a
# blueprint may touch any flow, so a namespace-limited "flows: manage" role does not reach them.
manage_flows = permission_required(FLOWS_MANAGE, everywhere=True)


def admins_only(view):
    """Superusers only: the default for admin pages that have no finer permission yet."""

    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not grants().superuser:
            abort(403)
        return view(*args, **kwargs)

    return wrapped


@bp.app_context_processor
def _inject_grants():
    return {"admin_grants": grants}


@bp.errorhandler(CeilingError)
def _beyond_ceiling(error: CeilingError):
    """Every path the privilege ceiling refuses answers alike: 403, naming the group. Checks
    run before anything is written; the rollback is for a check made after a flush."""
    from ..errors import render_error
    from ..extensions import db

    db.session.rollback()
    return render_error(403, "Beyond what you may give", str(error))


def client_ip() -> str | None:
    return request.remote_addr


from . import (  # noqa: E402,F401  (routes attach to bp)
    access,
    audit,
    blueprints,
    dashboard,
    flows,
    invitations,
    prompts,
    sources,
    stages,
    users,
)
