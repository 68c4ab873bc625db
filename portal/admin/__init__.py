"""The admin area: one blueprint, one module per resource, each view guarded by a permission.

Every admin URL names the tenant it acts in: /t/<tenant>/admin/... The URL processors below
take the slug out of the URL into the current tenant (portal.tenants.use_tenant) and put it
back into every url_for("admin....") of the page, so views never pass it themselves.
"""

from functools import wraps

from flask import Blueprint, abort, g, make_response, request, session, url_for
from flask_login import current_user, login_required

from .. import tenants
from ..access import FLOWS_MANAGE, CeilingError, Grants, is_admin, request_grants

bp = Blueprint("admin", __name__, url_prefix="/t/<tenant>/admin")


@bp.url_value_preprocessor
def _take_tenant_from_url(endpoint, values):
    if tenants.use_tenant_named((values or {}).pop("tenant", None)) is None:
        abort(404)


@bp.url_defaults
def _put_tenant_in_url(endpoint, values):
    if "tenant" not in values:
        values["tenant"] = admin_tenant().slug


def admin_tenant():
    """The tenant admin links lead to: the one being served, else the person's home tenant."""
    return tenants.acting_tenant(current_user if current_user.is_authenticated else None)


@bp.before_request
def _refuse_inactive_tenant():
    """An inactive tenant's members may not act in it; superadmins may (to bring it back)."""
    from ..errors import render_error

    if not current_user.is_authenticated:
        return None
    if not g.tenant.active and not grants().superuser:
        return render_error(403, "This tenant is deactivated",
                            f"“{g.tenant.name}” has been deactivated by an instance administrator.")
    if session.get(tenants.LAST_TENANT_KEY) != g.tenant.slug:
        session[tenants.LAST_TENANT_KEY] = g.tenant.slug
    return None


def tenant_get_or_404(model, ident, *, edit: bool = False):
    """The one scoped lookup of the admin area: the row of `model` with this id in the current
    tenant, else 404 (another tenant's row is as absent as a missing one). Instance-wide flows,
    stages and prompts are seen by every tenant; with `edit`, only a superadmin gets them."""
    row = tenants.tenant_get(model, ident)
    if row is None:
        abort(404)
    if edit and not tenants.may_edit_shared(row, grants().superuser):
        from ..errors import render_error

        abort(make_response(render_error(
            403, "Shared by every tenant",
            "This is instance-wide; only an instance administrator can change it.")))
    return row


def grants() -> Grants:
    """The signed-in user's permissions in the tenant the admin pages act in, computed once per
    request."""
    user = current_user if current_user.is_authenticated else None
    return request_grants(user, tenants.acting_tenant(user))


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


def scoped_url(endpoint: str, **values) -> str:
    """The address of an admin page that also serves the instance (invitations, audit log:
    portal/admin/instance.py mounts the same views under /instance/...): the instance's when
    acting on the instance, else the current tenant's."""
    return url_for(("instance." if tenants.in_instance() else "admin.") + endpoint, **values)


@bp.app_context_processor
def _inject_grants():
    return {"admin_grants": grants, "admin_tenant": admin_tenant,
            "tenant_choices": _tenant_choices, "scoped_url": scoped_url,
            "in_instance": tenants.in_instance}


def _tenant_choices():
    """The header's tenant switcher: only once a second tenant exists and the person may use
    more than one (one query)."""
    if not current_user.is_authenticated or tenants.tenant_count() < 2:
        return []
    choices = tenants.tenants_for(current_user)
    return choices if len(choices) > 1 else []


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
