"""Tenants over the API, for superadmins: list, get, create, rename or (de)activate, delete.
The same tenant commands as the instance pages (portal.tenants: create_tenant, update_tenant,
delete_tenant), so the same checks and audit events."""

from __future__ import annotations

from flask_smorest import Blueprint

from .. import tenants
from ..extensions import db
from ..models import Tenant
from ..numbers import DB_INT_MAX
from . import schemas as s
from .auth import Caller, caller
from .problems import ApiError, field_error

blp = Blueprint("api_tenants", __name__, url_prefix="/tenants",
                description="Tenants (superadmins only).")


def _superadmin() -> Caller:
    who = caller()
    if not who.grants.superuser:
        what = "your token does not carry 'superuser'" if who.token is not None else \
            "you are not a superadmin"
        raise ApiError(403, f"Tenants are for superadmins only, and {what}.")
    return who


def shape(tenant: Tenant) -> dict:
    return {"id": tenant.id, "slug": tenant.slug, "name": tenant.name, "active": tenant.active,
            "default": tenant.id == tenants.default_tenant().id, "created_at": tenant.created_at}


def _get(tenant_id: int) -> Tenant:
    tenant = db.session.get(Tenant, tenant_id) if 1 <= tenant_id <= DB_INT_MAX else None
    if tenant is None:
        raise ApiError(404, "No such tenant.")
    return tenant


def _invalid(exc: tenants.TenantError) -> ApiError:
    db.session.rollback()
    if not exc.field:
        return ApiError(409, str(exc), title="Not possible")
    return field_error(exc.field, str(exc))


@blp.route("/")
@blp.response(200, s.TenantSchema(many=True))
def list_tenants():
    """Every tenant, by name."""
    _superadmin()
    return [shape(t) for t in db.session.scalars(db.select(Tenant).order_by(Tenant.name, Tenant.id))]


@blp.route("/", methods=["POST"])
@blp.arguments(s.TenantCreate)
@blp.response(201, s.TenantSchema)
def create_tenant(data):
    who = _superadmin()
    try:
        tenant = tenants.create_tenant(name=data["name"], slug=data["slug"], actor=who.user,
                                       ip=who.ip)
    except tenants.TenantError as exc:
        raise _invalid(exc) from None
    return shape(tenant)


@blp.route("/<int:tenant_id>")
@blp.response(200, s.TenantSchema)
def get_tenant(tenant_id: int):
    _superadmin()
    return shape(_get(tenant_id))


@blp.route("/<int:tenant_id>", methods=["PATCH"])
@blp.arguments(s.TenantPatch)
@blp.response(200, s.TenantSchema)
def update_tenant(data, tenant_id: int):
    """Rename it (name, slug) or deactivate it (`active: false`: its invitations stop working
    and its members may not act in it); fields left out keep their value."""
    who = _superadmin()
    tenant = _get(tenant_id)
    try:
        tenants.update_tenant(tenant, name=data.get("name", tenant.name),
                              slug=data.get("slug", tenant.slug),
                              active=data.get("active", tenant.active), actor=who.user, ip=who.ip)
    except tenants.TenantError as exc:
        raise _invalid(exc) from None
    return shape(tenant)


@blp.route("/<int:tenant_id>", methods=["DELETE"])
@blp.response(200, s.TenantDeleted)
def delete_tenant(tenant_id: int):
    """Delete the tenant and everything it owns (its invitations, groups, roles, flows, audit
    events and API tokens; accounts stay). The default tenant cannot be deleted (409)."""
    who = _superadmin()
    tenant = _get(tenant_id)
    summary = tenants.deletion_summary(tenant)
    try:
        tenants.delete_tenant(tenant, actor=who.user, ip=who.ip)
    except tenants.TenantError as exc:
        raise _invalid(exc) from None
    return {"id": tenant_id, "deleted": True, "removed": vars(summary)}
