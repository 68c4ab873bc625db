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


def has_second_factor(user: User, methods: tuple[str, ...] = (TOTP, RECOVERY_CODE)) -> bool:
    """Can this person answer a validate stage that accepts `methods`: a confirmed TOTP device,
    or (when only recovery codes are accepted) an unused recovery code."""
    if TOTP in methods and user_has_mfa(user):
        return True
    return TOTP not in methods and RECOVERY_CODE in methods and remaining_recovery_codes(user) > 0


def verify_second_factor(user: User, code: str, *, at: datetime | None = None,
                         ip: str | None = None,
                         methods: tuple[str, ...] = (TOTP, RECOVERY_CODE)) -> str | None:
    """Accept a code from an authenticator app or a recovery code; which it was ("totp" or
    "recovery_code"), or None. Each code works once; one failure is audited per refusal.
    `methods`: the kinds a validate stage accepts (its device classes)."""
    method = None
    if TOTP in methods and use_totp(user, code, at=at) is not None:
        method = TOTP
    elif RECOVERY_CODE in methods and use_recovery_code(user, code, at=at, ip=ip):
        method = RECOVERY_CODE
    if method is None:
        record_failure(user, "any", ip=ip)
    db.session.commit()
    return method


__all__ = [
    "RECOVERY_CODE", "TOTP", "Enrolment", "MFAError", "MFAPermissionError", "begin_totp",
    "confirm_totp", "consume_recovery_code", "enrolment", "generate_recovery_codes",
    "has_second_factor", "list_devices",
    "remaining_recovery_codes", "remove_totp", "secret_of", "use_recovery_code",
    "use_totp", "user_has_mfa", "verify_second_factor", "verify_totp",
]
