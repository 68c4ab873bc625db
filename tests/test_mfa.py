"""The MFA service layer: TOTP enrolment and verification, recovery codes, removal, storage.

Time is passed in (`at=`), never waited for; codes are computed by pyotp from the secret the
service hands back, as an authenticator app would.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest
from flask_migrate import upgrade
from sqlalchemy import func, select, text

from portal import create_app, mfa
from portal.audit import Action
from portal.auth.service import create_user
from portal.extensions import db
from portal.models import AuditEvent, Group, RecoveryCode, Role, TOTPDevice, User
from portal.security.sealing import SealError

from .conftest import TEST_PASSWORD, database_url

T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)  # a step boundary (divisible by 30 s)
STEP = timedelta(seconds=30)


def _user(username: str, *, permissions=(), superuser=False) -> User:
    user = create_user(username=username, email=f"{username}@example.com",
                       password=TEST_PASSWORD, superuser=superuser)
    if permissions:
        user.groups.append(Group(name=f"{username}-group", attributes={},
                                 roles=[Role(name=f"{username}-role", permissions=list(permissions))]))
        db.session.commit()
    return user


def _code(secret: str, at: datetime) -> str:
    """What the person's app shows at `at`."""
    return pyotp.TOTP(secret).at(at)


def _enrolled(user: User, at: datetime = T0) -> tuple[TOTPDevice, str]:
    """A confirmed device (its first code used at `at`) and its secret."""
    enrolment = mfa.begin_totp(user)
    secret = mfa.secret_of(enrolment.device)
    assert mfa.confirm_totp(enrolment.device, _code(secret, at), at=at)
    return enrolment.device, secret


def _count(action: str) -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEvent)
                             .where(AuditEvent.action == action))


# -- enrolment ------------------------------------------------------------------------------------


def test_enrolment_is_confirmed_only_by_a_code_from_its_secret(app):
    with app.app_context():
        sam = _user("sam")
        enrolment = mfa.begin_totp(sam, "Phone")
        device = enrolment.device
        secret = mfa.secret_of(device)
        assert secret == enrolment.secret and len(secret) == 32
        assert not device.confirmed and not mfa.user_has_mfa(sam)
        # A device not yet confirmed is no factor: its codes do not sign anyone in.
        assert mfa.verify_totp(sam, _code(secret, T0), at=T0) is None

        assert mfa.confirm_totp(device, "000000" if _code(secret, T0) != "000000" else "111111",
                                at=T0) is False
        db.session.refresh(device)
        assert not device.confirmed and not mfa.user_has_mfa(sam)

        assert mfa.confirm_totp(device, _code(secret, T0), at=T0) is True
        db.session.refresh(device)
        assert device.confirmed and device.confirmed_at == T0 and mfa.user_has_mfa(sam)
        assert [d.name for d in mfa.list_devices(sam)] == ["Phone"]
        # Once confirmed, the secret is never shown again, and confirming again is refused.
        with pytest.raises(mfa.MFAError):
            mfa.enrolment(device)
        with pytest.raises(mfa.MFAError):
            mfa.confirm_totp(device, _code(secret, T0 + STEP), at=T0 + STEP)
        assert (_count(Action.MFA_DEVICE_ADDED), _count(Action.MFA_DEVICE_CONFIRMED),
                _count(Action.MFA_VERIFICATION_FAILED)) == (1, 1, 2)


def test_the_first_code_counts_as_used(app):
    """The code that confirmed the device cannot also pass the sign-in that follows."""
    with app.app_context():
        sam = _user("sam")
        _device, secret = _enrolled(sam, at=T0)
        assert mfa.verify_totp(sam, _code(secret, T0), at=T0) is None
        assert mfa.verify_totp(sam, _code(secret, T0 + STEP), at=T0 + STEP) is not None


def test_setup_page_shows_qr_code_uri_and_grouped_secret(app):
    with app.app_context():
        sam = _user("sam")
        first = mfa.begin_totp(sam)
        again = mfa.enrolment(first.device)  # the page shown again after a wrong first code
        assert (again.secret, again.provisioning_uri) == (first.secret, first.provisioning_uri)

        assert re.fullmatch(r"<svg\b.*</svg>", again.qr_svg, re.S)
        assert "<title>QR code for your authenticator app</title>" in again.qr_svg
        # segno cannot decode its own output, so the URI it encodes is checked as text.
        uri = urlsplit(again.provisioning_uri)
        assert (uri.scheme, uri.netloc, unquote(uri.path)) == ("otpauth", "totp",
                                                               "/Invitation portal:sam")
        query = parse_qs(uri.query)
        assert query == {"secret": [again.secret], "issuer": ["Invitation portal"]}
        # The defaults (6 digits, 30 s, SHA1) are implied, so every app reads them the same.
        assert pyotp.parse_uri(again.provisioning_uri).now() == pyotp.TOTP(again.secret).now()

        groups = again.secret_groups.split(" ")
        assert [len(g) for g in groups] == [4] * 8 and "".join(groups) == again.secret


def test_a_new_enrolment_replaces_an_abandoned_one(app):
    with app.app_context():
        sam = _user("sam")
        mfa.begin_totp(sam)
        _enrolled(sam)
        mfa.begin_totp(sam, "Tablet")
        latest = mfa.begin_totp(sam, "Tablet")
        devices = mfa.list_devices(sam)
        assert [(d.name, d.confirmed) for d in devices] == [
            ("Authenticator app", True), ("Tablet", False)]
        assert mfa.secret_of(devices[1]) == latest.secret  # the page the person has open
        assert db.session.scalar(select(func.count()).select_from(TOTPDevice)) == 2
        assert len(mfa.list_devices(sam, confirmed_only=True)) == 1


# -- verification ---------------------------------------------------------------------------------


def test_a_code_works_once_and_a_wrong_one_never(app):
    with app.app_context():
        sam = _user("sam")
        device, secret = _enrolled(sam)
        now = T0 + 10 * STEP
        good = _code(secret, now)
        wrong = f"{(int(good) + 1) % 10**6:06d}"
        assert mfa.verify_totp(sam, wrong, at=now) is None
        used = mfa.verify_totp(sam, f" {good[:3]} {good[3:]} ", at=now)  # as the app shows it
        assert used is not None and used.id == device.id
        db.session.refresh(device)
        assert device.last_used_at == now
        assert mfa.verify_totp(sam, good, at=now) is None  # the replay
        assert mfa.verify_totp(sam, good, at=now + STEP) is None  # still in the window: refused
        assert _count(Action.MFA_VERIFICATION_FAILED) == 3


@pytest.mark.parametrize("offset", [-1, 1])
def test_one_step_either_side_is_accepted(app, offset):
    with app.app_context():
        sam = _user("sam")
        _device, secret = _enrolled(sam)
        now = T0 + 10 * STEP
        code = _code(secret, now + offset * STEP)
        assert mfa.verify_totp(sam, code, at=now + timedelta(seconds=7)) is not None


@pytest.mark.parametrize("offset", [-2, 2])
def test_two_steps_away_is_refused(app, offset):
    with app.app_context():
        sam = _user("sam")
        _device, secret = _enrolled(sam)
        now = T0 + 10 * STEP
        assert mfa.verify_totp(sam, _code(secret, now + offset * STEP), at=now) is None


def test_an_older_code_after_a_newer_one_is_refused(app):
    """Each accepted code moves the device forward: a code seen over a shoulder a moment
    earlier is worthless once the person has signed in with a later one."""
    with app.app_context():
        sam = _user("sam")
        _device, secret = _enrolled(sam)
        now = T0 + 10 * STEP
        assert mfa.verify_totp(sam, _code(secret, now), at=now) is not None
        assert mfa.verify_totp(sam, _code(secret, now - STEP), at=now) is None
        assert mfa.verify_totp(sam, _code(secret, now + STEP), at=now) is not None


def test_a_code_is_checked_against_its_owners_devices_only(app):
    with app.app_context():
        sam, kim = _user("sam"), _user("kim")
        _device, secret = _enrolled(sam)
        _enrolled(kim)
        now = T0 + 10 * STEP
        assert mfa.verify_totp(kim, _code(secret, now), at=now) is None
        assert mfa.verify_totp(sam, _code(secret, now), at=now) is not None


def _race(app, user_id: int, attempt, *, meet_after=None) -> list:
    """Run `attempt(user)` in two threads at once, each with its own session and connection.

    With `meet_after` (a function in portal.mfa.totp), both threads wait for each other right
    after it returns: both have read the device before either writes, the moment a check made
    in Python instead of in the UPDATE would let both through.
    """
    start, meet = threading.Barrier(2), threading.Barrier(2)
    results, errors = [], []
    original = getattr(mfa.totp, meet_after) if meet_after else None

    def meeting(*args, **kwargs):
        value = original(*args, **kwargs)
        meet.wait(timeout=10)
        return value

    def run():
        try:
            with app.app_context():
                user = db.session.get(User, user_id)
                start.wait(timeout=10)
                results.append(attempt(user))
                db.session.remove()
        except Exception as exc:  # noqa: BLE001 (reported by the assertion below)
            errors.append(exc)

    if meet_after:
        setattr(mfa.totp, meet_after, meeting)
    try:
        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        if meet_after:
            setattr(mfa.totp, meet_after, original)
    assert errors == [] and len(results) == 2
    return results


def test_one_code_sent_twice_at_once_succeeds_once(app):
    with app.app_context():
        sam = _user("sam")
        _device, secret = _enrolled(sam)
        sam_id = sam.id
    now = T0 + 10 * STEP
    code = _code(secret, now)
    results = _race(app, sam_id, lambda user: mfa.verify_totp(user, code, at=now) is not None,
                    meet_after="_matching_step")
    assert sorted(results) == [False, True]
    with app.app_context():
        assert _count(Action.MFA_VERIFICATION_FAILED) == 1


def test_one_recovery_code_sent_twice_at_once_succeeds_once(app):
    with app.app_context():
        sam = _user("sam")
        _enrolled(sam)
        code = mfa.generate_recovery_codes(sam)[0]
        sam_id = sam.id
    results = _race(app, sam_id, lambda user: mfa.consume_recovery_code(user, code))
    assert sorted(results) == [False, True]
    with app.app_context():
        assert mfa.remaining_recovery_codes(db.session.get(User, sam_id)) == 9


# -- recovery codes -------------------------------------------------------------------------------


def test_recovery_codes_each_work_once(app):
    with app.app_context():
        sam = _user("sam")
        _enrolled(sam)
        codes = mfa.generate_recovery_codes(sam)
        assert len(codes) == 10 and len(set(codes)) == 10
        assert all(re.fullmatch(r"[0-9a-f]{4}(-[0-9a-f]{4}){3}", c) for c in codes)
        assert mfa.remaining_recovery_codes(sam) == 10
        assert mfa.consume_recovery_code(sam, codes[0].upper().replace("-", " "), at=T0)
        assert not mfa.consume_recovery_code(sam, codes[0], at=T0)
        for used, code in enumerate(codes[1:], start=2):
            assert mfa.consume_recovery_code(sam, code, at=T0)
            assert mfa.remaining_recovery_codes(sam) == 10 - used
        assert not any(mfa.consume_recovery_code(sam, code) for code in codes)
        assert (_count(Action.MFA_RECOVERY_CODE_USED), _count(Action.MFA_VERIFICATION_FAILED)) == (10, 11)


def test_regenerating_recovery_codes_invalidates_the_old_ones(app):
    with app.app_context():
        sam, kim = _user("sam"), _user("kim")
        old = mfa.generate_recovery_codes(sam)
        kims = mfa.generate_recovery_codes(kim)
        assert mfa.consume_recovery_code(sam, old[0])
        new = mfa.generate_recovery_codes(sam)
        assert not set(old) & set(new)
        assert not any(mfa.consume_recovery_code(sam, code) for code in old[1:])
        assert mfa.remaining_recovery_codes(sam) == 10
        assert not mfa.consume_recovery_code(sam, kims[0])  # another person's code
        assert mfa.consume_recovery_code(sam, new[5])
        assert mfa.remaining_recovery_codes(sam) == 9 and mfa.remaining_recovery_codes(kim) == 10
        assert _count(Action.MFA_RECOVERY_CODES_GENERATED) == 3


def test_verify_second_factor_takes_either_kind_of_code(app):
    with app.app_context():
        sam = _user("sam")
        _device, secret = _enrolled(sam)
        recovery = mfa.generate_recovery_codes(sam)
        now = T0 + 10 * STEP
        assert mfa.verify_second_factor(sam, _code(secret, now), at=now) == mfa.TOTP
        assert mfa.verify_second_factor(sam, _code(secret, now), at=now) is None
        assert mfa.verify_second_factor(sam, recovery[3], at=now) == mfa.RECOVERY_CODE
        assert mfa.verify_second_factor(sam, recovery[3], at=now) is None
        assert mfa.verify_second_factor(sam, "", at=now) is None
        assert _count(Action.MFA_VERIFICATION_FAILED) == 3


# -- storage --------------------------------------------------------------------------------------


def test_the_database_alone_does_not_reveal_secrets(app, tmp_path):
    with app.app_context():
        sam = _user("sam")
        device, secret = _enrolled(sam)
        codes = mfa.generate_recovery_codes(sam)
        sealed = db.session.execute(text("SELECT secret_sealed FROM totp_devices")).scalar_one()
        assert secret not in sealed and secret.lower() not in sealed.lower()
        digests = db.session.scalars(text("SELECT digest FROM recovery_codes")).all()
        assert len(digests) == 10
        assert not any(c.replace("-", "") in d or c in d for c in codes for d in digests)
        device_id = device.id

    other = create_app({"SQLALCHEMY_DATABASE_URI": database_url(tmp_path),
                        "SECRET_KEY": "another-secret-key-entirely"})
    try:
        with other.app_context():
            sam = db.session.scalar(select(User).filter_by(username="sam"))
            with pytest.raises(SealError):
                mfa.secret_of(db.session.get(TOTPDevice, device_id))
            now = T0 + 10 * STEP
            assert mfa.verify_totp(sam, _code(secret, now), at=now) is None
            assert not mfa.consume_recovery_code(sam, codes[0])
            assert mfa.remaining_recovery_codes(sam) == 10
    finally:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()


# -- removal --------------------------------------------------------------------------------------


def test_only_the_owner_or_an_account_manager_removes_a_device(app):
    with app.app_context():
        sam = _user("sam")
        stranger = _user("kim")
        inviter = _user("ivy", permissions=["invitations:manage"])
        manager = _user("max", permissions=["users:manage"])
        chief = _user("root", superuser=True)

        device, _secret = _enrolled(sam)
        for refused in (stranger, inviter):
            with pytest.raises(mfa.MFAPermissionError):
                mfa.remove_totp(device, actor=refused)
        assert mfa.user_has_mfa(sam)
        mfa.remove_totp(device, actor=manager)
        assert not mfa.user_has_mfa(sam) and mfa.list_devices(sam) == []

        own, _secret = _enrolled(sam)
        mfa.remove_totp(own, actor=sam)
        assert mfa.list_devices(sam) == []

        # A superuser's second factor is a superuser's business (as deactivating them is).
        chiefs, _secret = _enrolled(chief)
        with pytest.raises(mfa.MFAPermissionError):
            mfa.remove_totp(chiefs, actor=manager)
        assert mfa.user_has_mfa(chief)
        mfa.remove_totp(chiefs, actor=_user("root2", superuser=True))
        assert not mfa.user_has_mfa(chief)

        actors = db.session.scalars(select(AuditEvent.actor_name).where(
            AuditEvent.action == Action.MFA_DEVICE_REMOVED).order_by(AuditEvent.id)).all()
        assert actors == ["max", "sam", "root2"]


def test_removing_the_last_device_removes_the_recovery_codes(app):
    with app.app_context():
        sam = _user("sam")
        first, _secret = _enrolled(sam)
        second, _secret = _enrolled(sam, at=T0 + STEP)
        codes = mfa.generate_recovery_codes(sam)
        mfa.remove_totp(first, actor=sam)
        assert mfa.remaining_recovery_codes(sam) == 10  # another device still stands
        mfa.remove_totp(second, actor=sam)
        assert mfa.remaining_recovery_codes(sam) == 0
        assert not mfa.consume_recovery_code(sam, codes[0])
        assert db.session.scalar(select(func.count()).select_from(RecoveryCode)) == 0


def test_deleting_a_user_deletes_their_factors(app):
    with app.app_context():
        sam = _user("sam")
        _enrolled(sam)
        mfa.generate_recovery_codes(sam)
        db.session.delete(sam)
        db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(TOTPDevice)) == 0
        assert db.session.scalar(select(func.count()).select_from(RecoveryCode)) == 0


# -- upgrade --------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_migration_0008_keeps_existing_users_without_a_second_factor(tmp_path):
    """Upgrading from 0007 keeps every user, who then signs in as before and can enrol."""
    from portal.auth.service import authenticate

    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url(tmp_path)})
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        upgrade(revision="0007")
        from sqlalchemy import text

        from portal.security.passwords import hash_password

        with db.engine.begin() as connection:  # today's create_user needs today's tables
            connection.execute(text(
                "INSERT INTO users (username, name, email, password_hash, attributes, active, "
                "is_superuser, type, path, created_at, session_generation) VALUES ('old', '', "
                "'old@example.com', :h, '{}', true, false, 'internal', 'users', CURRENT_TIMESTAMP, 0)"),
                {"h": hash_password(TEST_PASSWORD)})
        db.session.remove()
        upgrade()
        try:
            old = authenticate("old", TEST_PASSWORD)
            assert old is not None and not mfa.user_has_mfa(old)
            _device, secret = _enrolled(old)
            assert mfa.verify_totp(old, _code(secret, T0 + STEP), at=T0 + STEP) is not None
        finally:
            db.session.remove()
            db.drop_all()
            with db.engine.begin() as connection:
                connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
            db.engine.dispose()
