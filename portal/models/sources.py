"""Federated sign-in: OpenID Connect sources, the identities linked to accounts through them,
and the short-lived record of one round trip to a provider (authentik's OAuthSource and
UserOAuthSourceConnection).

Sources are instance-wide for now. Tenant-owned sources are one column away (`tenant_id`,
nullable = instance-wide); the service layer already takes the source as a parameter.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .types import UTCDateTime, utcnow


class MatchingMode:
    """How a returning identity finds its account (authentik's user_matching_mode, reduced to
    the two safe ones): always by the subject once linked; the first time either by the
    provider's *verified* email with the person confirming the link, or never automatically."""

    EMAIL_LINK = "email_link"
    IDENTIFIER = "identifier"  # by subject only: an unlinked identity always enrolls
    CHOICES = (
        (EMAIL_LINK, "By subject once linked; the first time by verified email, confirmed by "
                     "the person"),
        (IDENTIFIER, "By subject only; never link an existing account automatically"),
    )


class OIDCSource(db.Model):
    __tablename__ = "oidc_sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    slug: Mapped[str] = mapped_column(String(50), unique=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    issuer: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(255))
    # Sealed (portal.security.sealing, its own label): never shown again, never logged.
    client_secret_sealed: Mapped[str] = mapped_column(Text, default="")
    scopes: Mapped[str] = mapped_column(String(500), default="openid email profile")
    # Claim names: which claim holds the username, email, name and groups.
    claim_username: Mapped[str] = mapped_column(String(100), default="preferred_username")
    claim_email: Mapped[str] = mapped_column(String(100), default="email")
    claim_name: Mapped[str] = mapped_column(String(100), default="name")
    claim_groups: Mapped[str] = mapped_column(String(100), default="")
    # [provider group, portal group name] pairs: the portal groups named here follow the
    # provider's groups claim (portal.sources.service.sync_groups). Names, not ids: an
    # instance-wide source's names are looked up in the tenant each sign-in acts in.
    group_map: Mapped[list] = mapped_column(JSON, default=list)
    use_userinfo: Mapped[bool] = mapped_column(Boolean, default=True)
    matching_mode: Mapped[str] = mapped_column(String(20), default=MatchingMode.EMAIL_LINK)
    # The flow a new identity enrolls through (its prompts pre-filled from the claims).
    enrollment_flow_id: Mapped[int | None] = mapped_column(
        ForeignKey("flows.id", ondelete="SET NULL"))
    # Fields the provider is authoritative for: pre-filled and read-only in that flow.
    authoritative_fields: Mapped[list] = mapped_column(JSON, default=list)
    show_on_login: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # NULL: instance-wide (superadmins manage it); else owned by one tenant (its admins manage
    # it, and it is offered only in that tenant's flows and invitations).
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True, default=None)

    enrollment_flow = relationship("Flow")
    tenant = relationship("Tenant")

    def __repr__(self) -> str:
        return f"<OIDCSource {self.slug}>"

    def __str__(self) -> str:
        return self.name


class SourceConnection(db.Model):
    """One identity at one source, linked to one account."""

    __tablename__ = "source_connections"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("oidc_sources.id", ondelete="CASCADE"))
    # None: an account created directly as SSO-only, linked at its first sign-in by the
    # provider's verified email (then the subject is filled in).
    subject: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user = relationship("User")
    source: Mapped[OIDCSource] = relationship()

    __table_args__ = (UniqueConstraint("source_id", "subject"),
                      UniqueConstraint("user_id", "source_id"))


class SSOAttempt(db.Model):
    """One trip to a provider and back. Looked up by the digest of its `state`, and consumed
    with a guarded UPDATE exactly once: a replayed or forged callback finds nothing. What the
    trip is for (a sign-in, an invitation's flow, linking a signed-in account) is kept here,
    server side, never in a parameter the provider echoes."""

    __tablename__ = "sso_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    state_digest: Mapped[str] = mapped_column(String(64), unique=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("oidc_sources.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(20))  # "flow" | "link"
    nonce: Mapped[str] = mapped_column(String(100))
    code_verifier_sealed: Mapped[str] = mapped_column(Text)
    flow_session_id: Mapped[int | None] = mapped_column(
        ForeignKey("flow_sessions.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    source: Mapped[OIDCSource] = relationship()

    __table_args__ = (Index("ix_sso_attempts_expires_at", "expires_at"),)
