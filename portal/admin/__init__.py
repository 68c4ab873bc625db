"""The admin area: one blueprint, one module per resource, each view guarded by a permission."""

from functools import wraps

from flask import Blueprint, abort, after_this_request, current_app, flash, g, request
from flask_login import current_user, login_required

from ..access import FLOWS_MANAGE, Grants, grants_for

bp = Blueprint("admin", __name__, url_prefix="/admin")


def grants() -> Grants:
    """The signed-in user's permissions, computed once per request."""
    if "grants" not in g:
        g.grants = grants_for(current_user if current_user.is_authenticated else None)
    return g.grants


def permission_required(permission: str | None):
    """Only users holding `permission` (any admin permission when None); superusers hold all.

    Anonymous visitors are sent to sign in; others are refused with 403.
    """

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            allowed = grants().any_admin if permission is None else grants().can(permission)
            if not allowed:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


manage_flows = permission_required(FLOWS_MANAGE)


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


def client_ip() -> str | None:
    return request.remote_addr


def deliver_after_response(message_ids: list[int]) -> None:
    """Try to send these outbox messages once the response has gone out: the admin's page
    never waits for the mail server, and a failure leaves them queued for the sender."""
    limit = current_app.config.get("OUTBOX_AFTER_RESPONSE_LIMIT", 50)
    if not message_ids or not current_app.config.get("OUTBOX_DELIVER_AFTER_RESPONSE", True):
        return
    if len(message_ids) > limit:
        # A big batch would hold this worker for long: the outbox sender (`outbox run`) has it.
        flash(f"{len(message_ids)} emails are queued; the outbox sender delivers them "
              "(`flask --app wsgi outbox run`).", "info")
        return
    app = current_app._get_current_object()

    @after_this_request
    def _register(response):
        def deliver():
            from ..mail import deliver as deliver_now

            with app.app_context():
                try:
                    deliver_now(ids=message_ids)
                except Exception:  # the sender retries later; never break the response
                    app.logger.exception("delivery after response failed")

        response.call_on_close(deliver)
        return response


from . import (  # noqa: E402,F401  (routes attach to bp)
    access,
    audit,
    blueprints,
    dashboard,
    flows,
    invitations,
    prompts,
    stages,
    users,
)
