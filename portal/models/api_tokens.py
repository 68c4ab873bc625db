"""API tokens: a person's named, expiring, revocable keys for /api/v1, each limited to a subset
of that person's permissions (portal.apitokens holds the rules)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .types import UTCDateTime, utcnow


class ApiToken(db.Model):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The one tenant every request with this token acts in (NULL only for rows made before
    # tenants were known; the migration moves those to the default tenant).
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"),
                                                  index=True)
    name: Mapped[str] = mapped_column(String(100))
    # The first characters of the secret, shown in lists so the owner can tell tokens apart;
    # they open nothing (the rest is 256 bits from `secrets`).
    prefix: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 of the whole secret
    # Names from portal.apitokens.SCOPES; the token never acts beyond its owner's grants.
    scopes: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_ip: Mapped[str] = mapped_column(String(64), default="")
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()  # noqa: F821
    tenant: Mapped[Tenant | None] = relationship()  # noqa: F821

    def __repr__(self) -> str:
        return f"<ApiToken {self.name} of user {self.user_id}>"
