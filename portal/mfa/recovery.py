"""Single-use recovery codes (authentik's static tokens): the way in when the phone is lost.

Each code is 64 random bits from `secrets`, shown once as four groups of four hex digits. That
is plenty for a code that works once and is tried behind a rate limit: guessing one of ten codes
takes ~2^60 tries on average.

Only a digest is stored: HMAC-SHA256 keyed from SECRET_KEY (portal.security.tokens.keyed_digest)
over the person's id and the code. Not argon2, on purpose: a slow hash protects low-entropy
secrets (passwords) from offline guessing, and 64 random bits need no such help; a keyed digest
already makes a copy of the database alone useless for testing guesses; and it lets a code be
found by an indexed lookup and consumed by one guarded UPDATE, where argon2 would mean hashing
the guess against each of ten rows (ten slow hashes per attempt, a lever for exhausting the CPU).

A code is consumed by `UPDATE ... WHERE used_at IS NULL`: of two requests with the same code,
exactly one succeeds. Generating codes replaces all of the person's earlier ones.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from flask import current_app
from sqlalchemy import delete, func, select, update

from ..audit import Action, record_event
from ..extensions import db
from ..models import RecoveryCode, User, utcnow
from ..security import tokens
from .totp import record_failure

CODE_BYTES = 8  # 64 bits
DIGEST_PURPOSE = "mfa-recovery-code"


def normalise(code: str | None) -> str:
    """What the person typed, without spaces or dashes, in lower case."""
    return "".join((code or "").split()).replace("-", "").lower()


def _digest(user: User, code: str) -> str:
    return tokens.keyed_digest(DIGEST_PURPOSE, f"{user.id}:{normalise(code)}")


def _new_code() -> str:
    raw = secrets.token_hex(CODE_BYTES)
    return "-".join(raw[i:i + 4] for i in range(0, len(raw), 4))


def generate_recovery_codes(user: User, *, count: int | None = None,
                            ip: str | None = None) -> list[str]:
    """New codes for the person, replacing every earlier one (used or not). The codes are
    returned once, to show; only their digests are kept."""
    count = count or current_app.config["MFA_RECOVERY_CODE_COUNT"]
    codes = [_new_code() for _ in range(count)]
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.session.add_all(RecoveryCode(user_id=user.id, digest=_digest(user, code)) for code in codes)
    record_event(Action.MFA_RECOVERY_CODES_GENERATED, actor=user, ip=ip, obj=user,
                 detail={"count": count})
    db.session.commit()
    return codes


def remaining_recovery_codes(user: User) -> int:
    """How many of the person's codes are still unused."""
    return db.session.scalar(select(func.count()).select_from(RecoveryCode).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))) or 0


def consume_recovery_code(user: User, code: str, *, at: datetime | None = None,
                          ip: str | None = None) -> bool:
    """Use one code: True exactly once per code. A failure is audited."""
    used = use_recovery_code(user, code, at=at, ip=ip)
    if not used:
        record_failure(user, "recovery_code", ip=ip)
    db.session.commit()
    return used


def use_recovery_code(user: User, code: str, *, at: datetime | None = None,
                      ip: str | None = None) -> bool:
    """consume_recovery_code without the failure's audit or the commit (for
    portal.mfa.verify_second_factor). The use itself is audited in the caller's transaction."""
    if len(normalise(code)) != 2 * CODE_BYTES:
        return False
    used = db.session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.digest == _digest(user, code),
               RecoveryCode.used_at.is_(None))
        .values(used_at=at or utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    if used:
        record_event(Action.MFA_RECOVERY_CODE_USED, actor=user, ip=ip, obj=user,
                     detail={"remaining": remaining_recovery_codes(user)})
    return used
