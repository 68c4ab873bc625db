"""API tokens: issue, authenticate, limit, revoke. No HTTP here: the API and the account page
pass the person, the address and what was typed.

A token carries scopes, a subset of the permissions its owner holds when it is made (the
privilege ceiling: nobody makes a key that opens more than they do), and at every use it acts
with the *intersection* of those scopes and what the owner holds then: a person who loses a
permission loses it on their tokens too, and a deactivated person's tokens open nothing.

A token belongs to ONE tenant: its scopes are checked against what the owner holds there when
it is made, and every request with it acts in that tenant with the owner's grants there.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update

from ..access import PERMISSIONS, Grants, grants_for, request_grants
from ..audit import Action, record_event
from ..extensions import db
from ..models import ApiToken, Tenant, User, utcnow
from ..security import tokens

SECRET_PREFIX = "ptk_"  # noqa: S105 (a marker that tells a portal token apart in logs and scanners)
SECRET_BYTES = 32  # 256 bits from `secrets`
PREFIX_SHOWN = 12  # "ptk_" and the first 8 characters of the random part
MAX_LIFETIME = timedelta(days=366)
LAST_USED_EVERY = timedelta(minutes=1)  # at most one write per token per minute for "last used"
SUPERUSER = "superuser"
SCOPES = {
    **PERMISSIONS,
    SUPERUSER: "Superuser: everything its owner may do as a superuser (only for superusers)",
}
MAX_NAME = 100


class TokenError(ValueError):
    """A token cannot be made as asked; `field` names what to change."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


def grantable_scopes(grants: Grants) -> list[str]:
    """The scopes this person may put on a token: the permissions they hold (anywhere), and
    `superuser` for a superuser."""
    held = [p for p in PERMISSIONS if grants.can(p)]
    return [*held, SUPERUSER] if grants.superuser else held


def tenant_of(token: ApiToken) -> Tenant:
    """The tenant a token acts in (a token from before tenants: the default one)."""
    from ..tenants import default_tenant

    return token.tenant if token.tenant_id is not None else default_tenant()


def token_tenants(user: User) -> list[Tenant]:
    """The tenants `user` may make a token for: those where they hold at least one scope."""
    from ..tenants import tenants_for

    return [t for t in tenants_for(user) if grantable_scopes(request_grants(user, t))]


def issue(user: User, *, name: str, scopes: Sequence[str], expires_at: datetime,
          ip: str | None = None, tenant: Tenant | None = None) -> tuple[ApiToken, str]:
    """A new token for `user` in `tenant` (default: the current tenant); returns it with its
    secret, which is shown this once only."""
    from ..tenants import current_tenant

    tenant = tenant or current_tenant()
    name = (name or "").strip()
    if not name:
        raise TokenError("name", "Give the token a name, so you know later what uses it.")
    if len(name) > MAX_NAME:
        raise TokenError("name", f"At most {MAX_NAME} characters.")
    if expires_at.tzinfo is None:
        raise TokenError("expires_at", "Give the expiry with a time zone (UTC).")
    now = utcnow()
    if expires_at <= now:
        raise TokenError("expires_at", "Choose a moment in the future.")
    if expires_at > now + MAX_LIFETIME:
        raise TokenError("expires_at", f"A token lives at most {MAX_LIFETIME.days} days.")
    scopes = list(dict.fromkeys(scopes))
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise TokenError("scopes", f"Unknown scope {unknown[0]!r}; the scopes are "
                                   f"{', '.join(SCOPES)}.")
    if not tenant.active:
        raise TokenError("tenant", f"The tenant {tenant.slug!r} is deactivated.")
    allowed = grantable_scopes(grants_for(user, tenant))
    beyond = [s for s in scopes if s not in allowed]
    if beyond:  # the ceiling: a token never holds what its owner does not (in its tenant)
        raise TokenError("scopes", f"You do not hold {beyond[0]!r} in the tenant "
                                   f"{tenant.slug!r}, so no token of yours can.")
    secret = SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    token = ApiToken(user=user, name=name, prefix=secret[:PREFIX_SHOWN],
                     digest=tokens.digest(secret), scopes=scopes, expires_at=expires_at,
                     last_used_ip="", tenant_id=tenant.id)
    db.session.add(token)
    record_event(Action.API_TOKEN_CREATED, actor=user, ip=ip, obj=token, tenant_id=tenant.id,
                 detail={"scopes": scopes, "expires_at": expires_at.isoformat(),
                         "tenant": tenant.slug})
    db.session.commit()
    return token, secret


def authenticate(secret: str | None, *, ip: str | None = None) -> ApiToken | None:
    """The live token this secret opens (not revoked, not expired, its owner active), or None.
    Notes when it was last used (at most once a minute, so reads stay reads)."""
    if not secret or len(secret) > 200 or not secret.startswith(SECRET_PREFIX):
        return None
    token = db.session.scalar(select(ApiToken).filter_by(digest=tokens.digest(secret)))
    now = utcnow()
    if token is None or token.revoked_at is not None or token.expires_at <= now:
        return None
    if not token.user.active:
        return None
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_EVERY:
        db.session.execute(update(ApiToken).where(ApiToken.id == token.id)
                           .values(last_used_at=now, last_used_ip=(ip or "")[:64])
                           .execution_options(synchronize_session=False))
        db.session.commit()
        token.last_used_at, token.last_used_ip = now, (ip or "")[:64]
    return token


def grants_of(token: ApiToken) -> Grants:
    """What a request with this token may do: its scopes, within what its owner holds now in
    the token's tenant."""
    held = grants_for(token.user, tenant_of(token))
    if SUPERUSER in token.scopes and held.superuser:
        return Grants(superuser=True)
    return Grants(scopes={p: held.namespaces(p) for p in token.scopes
                          if p in PERMISSIONS and held.can(p)})


def tokens_of(user: User) -> list[ApiToken]:
    """A person's tokens, newest first (revoked and expired ones too, marked as such)."""
    return list(db.session.scalars(select(ApiToken).filter_by(user_id=user.id)
                                   .order_by(ApiToken.id.desc())))


def find_own(user: User, token_id: int) -> ApiToken | None:
    token = db.session.get(ApiToken, token_id)
    return token if token is not None and token.user_id == user.id else None


def revoke(token: ApiToken, *, actor: User, ip: str | None = None) -> bool:
    """Stop the token at once; False when it was revoked already."""
    if token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    record_event(Action.API_TOKEN_REVOKED, actor=actor, ip=ip, obj=token)
    db.session.commit()
    return True


def state_of(token: ApiToken, now: datetime | None = None) -> str:
    """"active", "expired" or "revoked", for lists."""
    now = now or utcnow()
    if token.revoked_at is not None:
        return "revoked"
    return "expired" if token.expires_at <= now else "active"


def parse_scopes(text: str | Iterable[str]) -> list[str]:
    """Scopes from "a,b c" (the CLI) or a list."""
    parts = text.replace(",", " ").split() if isinstance(text, str) else list(text)
    return [p.strip() for p in parts if p.strip()]
