"""One-time tokens for links that are not invitations (first-admin setup, set password)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .types import UTCDateTime, utcnow


class TokenPurpose:
    SETUP = "setup"
    SET_PASSWORD = "set_password"  # noqa: S105 (a label, not a secret)
    EMAIL_VERIFICATION = "email_verification"


class ActionToken(db.Model):
    __tablename__ = "action_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(String(40), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The flow in progress that sent an email-verification link; kept NULL once it is cleaned up,
    # so a late click still activates the account.
    flow_session_id: Mapped[int | None] = mapped_column(
        ForeignKey("flow_sessions.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User | None] = relationship()  # noqa: F821
