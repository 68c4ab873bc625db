"""TOTP authenticators (RFC 6238): enrol, confirm, verify, remove. No HTTP.

A device is created unconfirmed with a fresh secret (160 bits, as RFC 4226 recommends) and only
counts as a factor once the person has typed a first code from it (`confirm_totp`), so a QR code
scanned badly never locks anyone out. The secret is sealed at rest (portal.security.sealing);
it is shown only while the device is unconfirmed.

Verification accepts the code of the current time step and of one step either side (a clock up
to one period off, or a code typed as it turns over) and then only for a step later than the
last one accepted on that device: a guarded UPDATE (`last_used_step < step`) lets exactly one of
two concurrent requests with the same code succeed, on SQLite and PostgreSQL alike.

Functions that change something commit: a code that was used must stay used whatever the caller
does next. Rate limiting is the caller's (the stage's): six digits do not survive unlimited tries.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime

import pyotp
from flask import current_app
from sqlalchemy import delete, exists, or_, select, update

from ..audit import Action, record_event
from ..extensions import db
from ..models import RecoveryCode, TOTPDevice, User, utcnow
from ..security import sealing

log = logging.getLogger(__name__)

SECRET_SEAL = b"portal-mfa-totp-secrets"
WINDOW = 1  # time steps accepted either side of the current one
ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
DEFAULT_DEVICE_NAME = "Authenticator app"


class MFAError(Exception):
    """A second-factor operation was refused (the message says why, for the person)."""


class MFAPermissionError(MFAError, PermissionError):
    """The actor may not do this to that person's authenticators."""


@dataclass(frozen=True)
class Enrolment:
    """What the setup page shows for an unconfirmed device: scan the QR code or type the secret."""

    device: TOTPDevice
    secret: str
    provisioning_uri: str
    qr_svg: str  # inline <svg>, no XML declaration: drop it into the page as it is

    @property
    def secret_groups(self) -> str:
        """The secret in groups of four, easier to type into an app by hand."""
        return " ".join(self.secret[i:i + 4] for i in range(0, len(self.secret), 4))


def normalise_code(code: str | None) -> str:
    """What the person typed, without the spaces an app shows ("123 456") or a paste adds."""
    return "".join((code or "").split())


def secret_of(device: TOTPDevice) -> str:
    """The device's base32 secret; SealError when SECRET_KEY is not the one it was sealed with."""
    return sealing.unseal(SECRET_SEAL, device.secret_sealed)


def _totp(device: TOTPDevice, secret: str | None = None) -> pyotp.TOTP:
    return pyotp.TOTP(secret or secret_of(device), digits=device.digits, interval=device.period,
                      digest=ALGORITHMS[device.algorithm])


def current_step(device: TOTPDevice, at: datetime | None = None) -> int:
    """The RFC 6238 time step T of `at` (now by default) for this device's period."""
    return int((at or utcnow()).timestamp()) // device.period


def list_devices(user: User, *, confirmed_only: bool = False) -> list[TOTPDevice]:
    """The person's devices, oldest first (an unconfirmed one is an enrolment in progress)."""
    query = select(TOTPDevice).where(TOTPDevice.user_id == user.id)
    if confirmed_only:
        query = query.where(TOTPDevice.confirmed.is_(True))
    return list(db.session.scalars(query.order_by(TOTPDevice.created_at, TOTPDevice.id)))


def user_has_mfa(user: User) -> bool:
    """Does signing in ask this person for a second factor: a confirmed TOTP device. Recovery
    codes alone do not count; they are the way back in when the device is lost."""
    return bool(db.session.scalar(select(exists().where(
        TOTPDevice.user_id == user.id, TOTPDevice.confirmed.is_(True)))))


def begin_totp(user: User, name: str = DEFAULT_DEVICE_NAME, *, digits: int | None = None,
               ip: str | None = None) -> Enrolment:
    """Start enrolling a device: a new unconfirmed device with a fresh secret.

    The person's earlier unconfirmed devices are removed (one enrolment in progress at a time):
    an abandoned setup must not leave secrets lying about. `digits` (6 or 8) is the setup
    stage's; MFA_TOTP_DIGITS otherwise.
    """
    config = current_app.config
    if digits not in (None, 6, 8):
        raise MFAError("An authenticator code has 6 or 8 digits.")
    algorithm = config["MFA_TOTP_ALGORITHM"].lower()
    if algorithm not in ALGORITHMS:
        raise MFAError(f"MFA_TOTP_ALGORITHM must be one of {', '.join(ALGORITHMS)}")
    db.session.execute(delete(TOTPDevice).where(
        TOTPDevice.user_id == user.id, TOTPDevice.confirmed.is_(False)))
    secret = pyotp.random_base32()
    device = TOTPDevice(
        user_id=user.id, name=(name or "").strip()[:100] or DEFAULT_DEVICE_NAME,
        secret_sealed=sealing.seal(SECRET_SEAL, secret), digits=digits or config["MFA_TOTP_DIGITS"],
        period=config["MFA_TOTP_PERIOD"], algorithm=algorithm, confirmed=False,
    )
    db.session.add(device)
    _record(Action.MFA_DEVICE_ADDED, device, user, actor=user, ip=ip)
    db.session.commit()
    return _enrolment(device, secret)


def enrolment(device: TOTPDevice) -> Enrolment:
    """The setup page again (a wrong first code, a reload) for a device not yet confirmed.
    A confirmed device's secret is never shown again."""
    if device.confirmed:
        raise MFAError("This authenticator is already set up.")
    return _enrolment(device, secret_of(device))


def _enrolment(device: TOTPDevice, secret: str) -> Enrolment:
    user = device.user if device.user is not None else db.session.get(User, device.user_id)
    uri = _totp(device, secret).provisioning_uri(
        name=user.username, issuer_name=current_app.config["SITE_NAME"])
    import segno  # on the MFA set-up page only: about 1 MiB a worker need not keep

    qr = segno.make(uri, error="m")
    svg = qr.svg_inline(scale=4, border=4, title="QR code for your authenticator app")
    return Enrolment(device=device, secret=secret, provisioning_uri=uri, qr_svg=svg)


def confirm_totp(device: TOTPDevice, code: str, *, at: datetime | None = None,
                 ip: str | None = None) -> bool:
    """Confirm an enrolment with a first code from the app; only then is the device a factor.
    The code's step counts as used, so it cannot also pass the next sign-in."""
    if device.confirmed:
        raise MFAError("This authenticator is already set up.")
    at = at or utcnow()
    user = db.session.get(User, device.user_id)
    step = _matching_step(device, normalise_code(code), at)
    confirmed = step is not None and db.session.execute(
        update(TOTPDevice)
        .where(TOTPDevice.id == device.id, TOTPDevice.confirmed.is_(False))
        .values(confirmed=True, confirmed_at=at, last_used_step=step, last_used_at=at)
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    if confirmed:
        _record(Action.MFA_DEVICE_CONFIRMED, device, user, actor=user, ip=ip)
    else:
        record_failure(user, "totp_setup", ip=ip)
    db.session.commit()
    return confirmed


def verify_totp(user: User, code: str, *, at: datetime | None = None,
                ip: str | None = None) -> TOTPDevice | None:
    """Check a code against the person's confirmed devices; the device it came from, or None.
    A failure is audited."""
    device = use_totp(user, code, at=at)
    if device is None:
        record_failure(user, "totp", ip=ip)
    db.session.commit()
    return device


def use_totp(user: User, code: str, *, at: datetime | None = None) -> TOTPDevice | None:
    """verify_totp without the audit or the commit (portal.mfa.verify_second_factor's part)."""
    at = at or utcnow()
    code = normalise_code(code)
    for device in list_devices(user, confirmed_only=True):
        step = _matching_step(device, code, at)
        if step is not None and _claim_step(device, step, at):
            return device
    return None


def _matching_step(device: TOTPDevice, code: str, at: datetime) -> int | None:
    """The latest step within the window whose code is `code`, compared in constant time."""
    if len(code) != device.digits or not code.isdigit():
        return None
    try:
        totp = _totp(device)
    except sealing.SealError:
        log.error("TOTP device %s cannot be opened (was SECRET_KEY changed?)", device.id)
        return None
    now = current_step(device, at)
    matches = [step for step in range(now - WINDOW, now + WINDOW + 1)
               if hmac.compare_digest(totp.generate_otp(step), code)]  # every step compared
    return max(matches) if matches else None


def _claim_step(device: TOTPDevice, step: int, at: datetime) -> bool:
    """Mark `step` used on the device unless it, or a later one, already was: the database lets
    exactly one request win a step, so a code works once even when sent twice at once."""
    return db.session.execute(
        update(TOTPDevice)
        .where(TOTPDevice.id == device.id, TOTPDevice.confirmed.is_(True),
               or_(TOTPDevice.last_used_step.is_(None), TOTPDevice.last_used_step < step))
        .values(last_used_step=step, last_used_at=at)
        .execution_options(synchronize_session=False)
    ).rowcount == 1


def remove_totp(device: TOTPDevice, *, actor: User, ip: str | None = None) -> None:
    """Remove a device: its owner, or an admin who may manage the owner's account.

    When the last confirmed device goes, the recovery codes go too: they back up a device, and
    left alone they would be a way in that nobody remembers is there.
    """
    from ..access import may_manage_account

    owner = db.session.get(User, device.user_id)
    if actor.id != owner.id and not may_manage_account(actor, owner):
        raise MFAPermissionError("You may not remove this person's authenticator.")
    _record(Action.MFA_DEVICE_REMOVED, device, owner, actor=actor, ip=ip)
    db.session.delete(device)
    db.session.flush()
    if not user_has_mfa(owner):
        db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == owner.id))
    db.session.commit()


def _record(action: str, device: TOTPDevice, owner: User, *, actor: User | None,
            ip: str | None) -> None:
    record_event(action, actor=actor, ip=ip, obj=device,
                 object_repr=f"{device.name} ({owner.username})", detail={"user": owner.username})


def record_failure(user: User, method: str, *, ip: str | None = None) -> None:
    """Audit a refused second-factor code (in the caller's transaction). The person is the
    object, not the actor: they have not proved who they are."""
    record_event(Action.MFA_VERIFICATION_FAILED, ip=ip, obj=user, detail={"method": method})
