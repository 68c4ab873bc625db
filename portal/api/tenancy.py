"""Which tenant an API request acts in: ONE function, so tenant-awareness is added here.

Today the portal is one instance with no tenants, so every request acts in "the instance"
(None). When tenants arrive, `/api/v1/{tenant}/...` becomes an alias of these routes (Kestra's
layout) and this function reads the tenant from the URL (or the token, which is limited to one);
the Caller carries it to the service layer, which already takes everything it needs as
parameters.
"""

from __future__ import annotations


def current_tenant() -> None:
    """The tenant of this request: always the single instance (None) for now."""
    return None
