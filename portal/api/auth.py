"""Who calls the API, and with what: a Bearer token (its scopes within its owner's grants), or
for reads only, the browser's signed-in session.

/api/v1/{tenant}/... names the tenant: a token acts only in its own (another is a 404, as if
it did not exist), an instance superadmin's token in any; without it the token decides.

Decision: a cookie session may READ (GET/HEAD), so the documentation page can try reads, but is
never accepted for a state change: those need `Authorization: Bearer`, which a browser never
sends by itself, so the API needs no CSRF token and a forged cross-site form gets 401.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, g, request
from flask_login import current_user

from .. import apitokens
from ..access import Grants, request_grants
from ..audit import acting_through
from ..models import ApiToken, Tenant, User
from ..tenants import by_slug, tenants_for, use_tenant
from .problems import ApiError
from .tenancy import current_tenant

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="portal"'}


@dataclass
class Caller:
    """Passed down to every service call: who, through which token, with what, in which tenant."""

    user: User
    token: ApiToken | None
    grants: Grants
    tenant: Tenant | None = None

    @property
    def ip(self) -> str | None:
        return request.remote_addr


def take_path_tenant(_endpoint, values) -> None:
    """url_value_preprocessor: /api/v1/{tenant}/... names the tenant; authenticate() decides
    whether the caller may act in it (the views never see the slug)."""
    g.api_path_tenant = values.pop("tenant", None) if values else None


def _path_tenant() -> Tenant | None:
    """The tenant the path names (None: the path names none); an unknown slug is a 404."""
    slug = g.get("api_path_tenant")
    if slug is None:
        return None
    tenant = by_slug(slug)
    if tenant is None:
        raise ApiError(404, NOT_YOUR_TENANT)
    return tenant


NOT_YOUR_TENANT = "No such tenant (or not one you may act in)."


def authenticate() -> None:
    """before_request of every API blueprint: set g.caller or refuse with 401; with a tenant
    in the path, act there if the caller may (else 404, as for anything of another tenant)."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise ApiError(401, "Send the token as `Authorization: Bearer <token>`.",
                           headers=CHALLENGE)
        token = apitokens.authenticate(secret.strip(), ip=request.remote_addr)
        if token is None:
            raise ApiError(401, "The token is unknown, expired or revoked, or its owner is "
                                "deactivated.", headers=CHALLENGE)
        grants, tenant = apitokens.grants_of(token), apitokens.tenant_of(token)
        named = _path_tenant()
        if named is not None and named.id != tenant.id:
            if not grants.superuser:  # a token is limited to its tenant
                raise ApiError(404, NOT_YOUR_TENANT)
            tenant = named  # an instance superadmin's token acts in any tenant
        use_tenant(tenant)  # every query below is scoped to it
        g.caller = Caller(user=token.user, token=token, grants=grants, tenant=current_tenant())
        manager = acting_through(token.id, token.name)
        manager.__enter__()
        g.audit_token_context = manager
        return
    if current_user.is_authenticated:
        if request.method not in SAFE_METHODS:
            raise ApiError(401, "A signed-in browser session may only read the API; changes "
                                "need an API token (`Authorization: Bearer`).", headers=CHALLENGE)
        user = current_user._get_current_object()
        named = _path_tenant()
        if named is not None:
            use_tenant(named)
        grants = request_grants(user)
        if named is not None and not grants.superuser and \
                named.id not in {t.id for t in tenants_for(user)}:
            raise ApiError(404, NOT_YOUR_TENANT)
        g.caller = Caller(user=user, token=None, grants=grants, tenant=current_tenant())
        return
    raise ApiError(401, "Authentication required: send an API token as "
                        "`Authorization: Bearer <token>`.", headers=CHALLENGE)


def end_request(_exc=None) -> None:
    """teardown of every API blueprint: stop naming the token in audit events."""
    manager = g.pop("audit_token_context", None)
    if manager is not None:
        manager.__exit__(None, None, None)


def caller() -> Caller:
    return g.caller


def require(permission: str, *, everywhere: bool = False) -> Caller:
    """The caller, if they (through their token) hold `permission`; else 403."""
    who = caller()
    allowed = who.grants.can_everywhere(permission) if everywhere else who.grants.can(permission)
    if not allowed:
        what = "your token does not carry" if who.token is not None else "you do not hold"
        raise ApiError(403, f"This needs the permission {permission!r}, which {what}"
                            + (" for every namespace." if everywhere else "."))
    return who


def rate_limit_key() -> str:
    """Per token (per address for anything else): one script cannot starve the others."""
    header = request.headers.get("Authorization", "")
    from ..security.tokens import digest

    if header.lower().startswith("bearer "):
        return "token:" + digest(header[7:].strip())[:32]
    return "address:" + (request.remote_addr or "")


def rate_limit() -> str:
    return current_app.config["RATELIMIT_API"]
