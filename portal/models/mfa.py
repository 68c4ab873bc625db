"""Second factors: TOTP authenticator devices and single-use recovery codes (authentik's
`authenticator_totp.TOTPDevice` and `authenticator_static.StaticToken`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .types import UTCDateTime, utcnow


class TOTPDevice(db.Model):
    __tablename__ = "totp_devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # The base32 secret, sealed (portal.security.sealing): a copy of the database alone must
    # not let anyone compute codes.
    secret_sealed: Mapped[str] = mapped_column(Text)
    # What the authenticator app was told at enrolment; kept per device so that changing the
    # portal's settings later does not break devices already enrolled.
    digits: Mapped[int] = mapped_column(Integer, default=6)
    period: Mapped[int] = mapped_column(Integer, default=30)
    algorithm: Mapped[str] = mapped_column(String(10), default="sha1")
    # Unconfirmed until the person types a first code: only then does it count as a factor.
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The time step (unix time // period) of the last code accepted; a code is accepted only
    # for a later step, so each code works once (replay protection, like django-otp's last_t).
    last_used_step: Mapped[int | None] = mapped_column(BigInteger)

    user: Mapped[User] = relationship()  # noqa: F821

    def __repr__(self) -> str:
        return f"<TOTPDevice {self.id} {self.name!r} {'confirmed' if self.confirmed else 'pending'}>"


class RecoveryCode(db.Model):
    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # HMAC-SHA256 of the code keyed from SECRET_KEY (see portal.mfa.recovery for why not argon2).
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set once, by a guarded UPDATE: a used code stays as a row so the count of those left is
    # honest and the audit log can point at it.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()  # noqa: F821

    def __repr__(self) -> str:
        return f"<RecoveryCode {self.id} {'used' if self.used_at else 'unused'}>"
