"""Which tenant an API request acts in: ONE function, the tenants package's answer.

A request with a token acts in the token's tenant, or under /api/v1/{tenant}/ in the tenant
named there when the token may (its own; any for a superadmin's token): authenticate() makes it
the current one on flask.g, so `portal.tenants.current_tenant()` and `visible()` scope every
query below. A signed-in browser session reads in the default tenant, or in the one named.
"""

from __future__ import annotations

from ..models import Tenant
from ..tenants import current_tenant as _tenants_current


def current_tenant() -> Tenant:
    """The tenant of this request (see portal.tenants.current_tenant)."""
    return _tenants_current()
