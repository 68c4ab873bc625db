"""Multi-factor authentication: the service layer the authenticator stages call. No HTTP.

- `totp`: enrol a TOTP device (begin -> QR code and secret -> confirm with a first code), verify
  codes once each, list and remove devices.
- `recovery`: single-use recovery codes, generated ten at a time, stored as keyed digests.
- here: `user_has_mfa` and `verify_second_factor`, the one check a sign-in's "authenticator
  validate" step makes, whatever the person typed.
"""

from __future__ import annotations

from datetime import datetime

from ..extensions import db
from ..models import User
from .recovery import (
    consume_recovery_code,
    generate_recovery_codes,
    remaining_recovery_codes,
    use_recovery_code,
)
from .totp import (
    Enrolment,
    MFAError,
    MFAPermissionError,
    begin_totp,
    confirm_totp,
    enrolment,
    list_devices,
    record_failure,
    remove_totp,
    secret_of,
    use_totp,
    user_has_mfa,
    verify_totp,
)

TOTP = "totp"
RECOVERY_CODE = "recovery_code"


def verify_second_factor(user: User, code: str, *, at: datetime | None = None,
                         ip: str | None = None) -> str | None:
    """Accept a code from an authenticator app or a recovery code; which it was ("totp" or
    "recovery_code"), or None. Each code works once; one failure is audited per refusal."""
    method = TOTP if use_totp(user, code, at=at) is not None else (
        RECOVERY_CODE if use_recovery_code(user, code, at=at, ip=ip) else None)
    if method is None:
        record_failure(user, "any", ip=ip)
    db.session.commit()
    return method


__all__ = [
    "RECOVERY_CODE", "TOTP", "Enrolment", "MFAError", "MFAPermissionError", "begin_totp",
    "confirm_totp", "consume_recovery_code", "enrolment", "generate_recovery_codes",
    "list_devices", "remaining_recovery_codes", "remove_totp", "secret_of", "use_recovery_code",
    "use_totp", "user_has_mfa", "verify_second_factor", "verify_totp",
]
