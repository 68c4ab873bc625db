"""The authenticator stages: TOTP setup (QR code, secret, first code, recovery codes shown once)
and authenticator validate (a TOTP or recovery code, once each, rate-limited; skip or deny for a
person without one), driven through FlowExecutor and through HTTP; and the account page's and
admin's authenticator actions.

Codes are computed with pyotp from the secret the service hands back, as an app would. A code
whose step was already used (the setup's first code) is refused; the next step's code is
accepted (one step of clock drift is allowed), which is how these tests get a fresh code
without waiting.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from portal import mfa
from portal.audit import Action
from portal.auth.service import create_user
from portal.extensions import db
from portal.flows import executor
from portal.flows.defaults import DEFAULT_TOTP_SETUP_SLUG, ensure_default_authenticator_setup_flow
from portal.flows.executor import FlowExecutor
from portal.models import (
    AuditEvent,
    Flow,
    FlowAuthentication,
    FlowDesignation,
    FlowSession,
    RecoveryCode,
    Stage,
    TOTPDevice,
    User,
    utcnow,
)

from ...conftest import TEST_PASSWORD, sign_in, submit
from ...flowkit import make_flow

RECOVERY_RE = re.compile(r"<li>([0-9a-f]{4}(?:-[0-9a-f]{4}){3})</li>")
SECRET_RE = re.compile(r'<code class="secret" id="totp-secret">([A-Z2-7 ]+)</code>')


def _code(secret: str, steps_ahead: int = 0) -> str:
    return pyotp.TOTP(secret).at(utcnow() + timedelta(seconds=30 * steps_ahead))


def _wrong(secret: str) -> str:
    right = {_code(secret, n) for n in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in right)


def _count(model, **where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).filter_by(**where))


def _user(app, username="sam") -> int:
    with app.app_context():
        return create_user(username=username, email=f"{username}@example.com",
                           password=TEST_PASSWORD).id


def _enrol(app, user_id) -> str:
    """A confirmed device for the person (its first code used now); its secret."""
    with app.app_context():
        user = db.session.get(User, user_id)
        enrolment = mfa.begin_totp(user)
        assert mfa.confirm_totp(enrolment.device, _code(enrolment.secret))
        return enrolment.secret


def _login(client, login="sam"):
    return sign_in(client, login, TEST_PASSWORD)


def _validate_flow(app, slug="mfa-check", **options) -> str:
    """Validate for the signed-in person, in a stage-configuration flow (its end goes back to
    the account page, so a test sees where it ended)."""
    url = make_flow(app, slug, [
        {"type": "authenticator_validate", "name": f"{slug}-validate", "options": options},
    ], authentication=FlowAuthentication.REQUIRE_AUTHENTICATED)
    with app.app_context():
        db.session.scalar(select(Flow).filter_by(slug=slug)).designation = \
            FlowDesignation.STAGE_CONFIGURATION
        db.session.commit()
    return url


def _run(app, slug: str, *, pending_user_id=None, current_user_id=None):
    """A FlowExecutor on a new session, without HTTP: the pending user set the way an
    identification stage sets it (FlowContext.set_pending_user)."""
    flow = db.session.scalar(select(Flow).filter_by(slug=slug))
    current = db.session.get(User, current_user_id) if current_user_id else None
    session, _ = executor.start(flow, None, current_user=current, lifetime=timedelta(hours=1))
    wizard = FlowExecutor(session, current_user=current, client_ip="192.0.2.7")
    if pending_user_id is not None:
        wizard.ctx.set_pending_user(db.session.get(User, pending_user_id))
        db.session.commit()
    return wizard


# -- TOTP setup, stage level ------------------------------------------------------------------


def test_setup_stage_confirms_a_device_then_shows_codes_once(app):
    user_id = _user(app)
    with app.app_context():
        ensure_default_authenticator_setup_flow()
        wizard = _run(app, DEFAULT_TOTP_SETUP_SLUG, current_user_id=user_id)
        step = wizard.step()
        assert step.kind == "page" and step.stage.phase == "setup"
        secret = step.stage.enrolment.secret
        # A reload shows the same secret: the device in progress is kept, not replaced.
        again = FlowExecutor(wizard.session, current_user=db.session.get(User, user_id)).step()
        assert again.stage.enrolment.secret == secret
        assert _count(TOTPDevice, user_id=user_id) == 1

        wrong = wizard.submit(step.binding_id, MultiDict({"code": _wrong(secret)}))
        assert wrong.kind == "page" and wrong.errors["code"]
        assert not mfa.user_has_mfa(db.session.get(User, user_id))

        confirmed = wizard.submit(step.binding_id, MultiDict({"code": _code(secret)}))
        assert confirmed.kind == "page" and confirmed.errors == {}
        assert ("success", "Your authenticator is set up.") in confirmed.notices
        assert mfa.user_has_mfa(db.session.get(User, user_id))

        codes_page = wizard.step()
        assert codes_page.stage.phase == "codes" and len(codes_page.stage.recovery_codes) == 10
        # Only digests are stored, and nothing of the codes or the secret sits in the session.
        stored = repr(db.session.get(FlowSession, wizard.session.id).prompt_data)
        assert not any(code in stored for code in codes_page.stage.recovery_codes)
        assert secret not in stored
        assert _count(RecoveryCode, user_id=user_id) == 10
        assert wizard.step().stage.phase == "codes_seen"  # shown once only
        done = wizard.submit(step.binding_id, MultiDict())
        assert done.kind == "done"
        assert _count(RecoveryCode, user_id=user_id) == 10  # the shown codes are the ones kept


def test_setup_stage_honours_digits_and_name(app):
    user_id = _user(app)
    make_flow(app, "totp8", [{"type": "authenticator_totp", "name": "totp8",
                              "options": {"digits": "8", "friendly_name": "Work phone"}}],
              authentication=FlowAuthentication.REQUIRE_AUTHENTICATED)
    with app.app_context():
        step = _run(app, "totp8", current_user_id=user_id).step()
        device = step.stage.enrolment.device
        assert (device.digits, device.name) == (8, "Work phone")
        assert "digits=8" in step.stage.enrolment.provisioning_uri


def test_setup_stage_without_a_person_is_denied(app):
    make_flow(app, "totp-nobody", [{"type": "authenticator_totp", "name": "totp-nobody"}])
    with app.app_context():
        step = _run(app, "totp-nobody").step()
        assert step.kind == "denied" and step.title == "Nobody to set up"
        assert _count(TOTPDevice) == 0


# -- TOTP setup over HTTP, from the account page ------------------------------------------------


def test_account_page_sets_up_an_authenticator(app, client):
    _user(app)
    with app.app_context():
        ensure_default_authenticator_setup_flow()
    _login(client)
    account = client.get("/account/").get_data(as_text=True)
    assert f'href="/if/flow/{DEFAULT_TOTP_SETUP_SLUG}/"' in account
    page = client.get(f"/if/flow/{DEFAULT_TOTP_SETUP_SLUG}/").get_data(as_text=True)
    assert "<svg" in page and "style=" not in page.split("<svg", 1)[1].split("</svg>", 1)[0]
    secret = SECRET_RE.search(page).group(1).replace(" ", "")
    url = f"/if/flow/{DEFAULT_TOTP_SETUP_SLUG}/"

    wrong = submit(client, url, {"code": _wrong(secret)})
    assert "That code is not right" in wrong.get_data(as_text=True)
    shown = submit(client, url, {"code": _code(secret)}).get_data(as_text=True)
    codes = RECOVERY_RE.findall(shown)
    assert len(codes) == 10 and "shown only this once" in shown
    again = client.get(url).get_data(as_text=True)
    assert RECOVERY_RE.findall(again) == [] and "were shown once already" in again
    back = submit(client, url, {})
    assert back.request.path == "/account/"
    account = back.get_data(as_text=True)
    assert re.search(r'Recovery codes left: <span id="recovery-left">10</span>', account)
    with app.app_context():
        assert _count(AuditEvent, action=Action.MFA_DEVICE_CONFIRMED) == 1


def test_setup_flow_needs_a_signed_in_person(app, client):
    with app.app_context():
        ensure_default_authenticator_setup_flow()
    page = client.get(f"/if/flow/{DEFAULT_TOTP_SETUP_SLUG}/")
    assert page.status_code == 403 and "Sign in required" in page.get_data(as_text=True)
    with app.app_context():
        assert _count(TOTPDevice) == 0


def test_account_page_removes_and_renews(app, client):
    user_id = _user(app)
    _login(client)  # before the authenticator: signing in would then ask for a code
    _enrol(app, user_id)
    with app.app_context():
        first = mfa.generate_recovery_codes(db.session.get(User, user_id))
        device_id = db.session.scalar(select(TOTPDevice.id).filter_by(user_id=user_id))
    renewed = submit(client, "/account/recovery-codes", {}, page_url="/account/")
    codes = RECOVERY_RE.findall(renewed.get_data(as_text=True))
    assert len(codes) == 10 and not set(codes) & set(first)
    with app.app_context():
        user = db.session.get(User, user_id)
        assert not mfa.use_recovery_code(user, first[0])  # the old codes are gone
        assert mfa.use_recovery_code(user, codes[0])
        db.session.commit()
    # Removal is a POST with the page's CSRF token; without one nothing happens.
    client.post(f"/account/authenticators/{device_id}/remove")
    with app.app_context():
        assert _count(TOTPDevice, user_id=user_id) == 1
    removed = submit(client, f"/account/authenticators/{device_id}/remove", {},
                     page_url="/account/")
    assert "is removed" in removed.get_data(as_text=True)
    with app.app_context():
        assert _count(TOTPDevice, user_id=user_id) == 0
        assert _count(RecoveryCode, user_id=user_id) == 0


def test_admin_removes_a_persons_authenticator(app, client, auth, admin):
    user_id = _user(app)
    _enrol(app, user_id)
    with app.app_context():
        device_id = db.session.scalar(select(TOTPDevice.id).filter_by(user_id=user_id))
    auth.login()
    detail = client.get(f"/admin/users/{user_id}").get_data(as_text=True)
    assert f"/admin/users/{user_id}/authenticators/{device_id}/remove" in detail
    submit(client, f"/admin/users/{user_id}/authenticators/{device_id}/remove", {},
           page_url=f"/admin/users/{user_id}")
    with app.app_context():
        assert _count(TOTPDevice, user_id=user_id) == 0
        event = db.session.scalar(select(AuditEvent).filter_by(action=Action.MFA_DEVICE_REMOVED))
        assert event.actor_id == admin


# -- validate -------------------------------------------------------------------------------------


def test_validate_stage_takes_a_totp_code_once(app):
    user_id = _user(app)
    secret = _enrol(app, user_id)
    make_flow(app, "mfa-login", [
        {"type": "authenticator_validate", "name": "mfa-login-validate"},
        {"type": "user_login", "name": "mfa-login-login"},
    ])
    with app.app_context():
        wizard = _run(app, "mfa-login", pending_user_id=user_id)
        step = wizard.step()
        assert step.kind == "page" and step.stage.type_name == "authenticator_validate"
        replay = wizard.submit(step.binding_id, MultiDict({"code": _code(secret)}))
        assert replay.kind == "page" and replay.errors["code"]  # the setup's code: used
        done = wizard.submit(step.binding_id, MultiDict({"code": _code(secret, 1)}))
        assert done.kind == "done" and done.login_user_id == user_id

        other = _run(app, "mfa-login", pending_user_id=user_id)
        step = other.step()
        again = other.submit(step.binding_id, MultiDict({"code": _code(secret, 1)}))
        assert again.kind == "page" and again.errors["code"]
        assert _count(AuditEvent, action=Action.MFA_VERIFICATION_FAILED) == 2


def test_validate_over_http_with_totp_and_recovery_code(app, client):
    user_id = _user(app)
    _login(client)  # before the authenticator: signing in would then ask for a code
    secret = _enrol(app, user_id)
    with app.app_context():
        codes = mfa.generate_recovery_codes(db.session.get(User, user_id))
    url = _validate_flow(app)
    page = client.get(url).get_data(as_text=True)
    assert 'name="code"' in page and "Two-step verification" in page
    wrong = submit(client, url, {"code": _wrong(secret)})
    assert "That code is not right, or was used already." in wrong.get_data(as_text=True)
    assert submit(client, url, {"code": _code(secret, 1)}).request.path == "/account/"

    url = _validate_flow(app, "mfa-check-2")
    used = submit(client, url, {"code": codes[0].upper()})  # case and dashes do not matter
    assert used.request.path == "/account/"
    assert "You used a recovery code; 9 left." in used.get_data(as_text=True)
    url = _validate_flow(app, "mfa-check-3")
    replay = submit(client, url, {"code": codes[0]})
    assert "That code is not right, or was used already." in replay.get_data(as_text=True)
    with app.app_context():
        assert _count(AuditEvent, action=Action.MFA_RECOVERY_CODE_USED) == 1


def test_validate_accepts_only_its_device_classes(app, client):
    user_id = _user(app)
    _login(client)  # before the authenticator: signing in would then ask for a code
    _enrol(app, user_id)
    with app.app_context():
        codes = mfa.generate_recovery_codes(db.session.get(User, user_id))
    url = _validate_flow(app, device_classes=["totp"])
    refused = submit(client, url, {"code": codes[0]})
    assert "That code is not right" in refused.get_data(as_text=True)
    with app.app_context():
        assert mfa.remaining_recovery_codes(db.session.get(User, user_id)) == 10


@pytest.mark.parametrize("action", ["skip", "deny"])
def test_not_configured_action(app, client, action):
    _user(app)
    url = _validate_flow(app, not_configured_action=action)
    _login(client)
    page = client.get(url)
    if action == "skip":
        assert page.status_code == 302 and page.location.endswith("/account/")
    else:
        assert page.status_code == 403
        assert "An authenticator is required" in page.get_data(as_text=True)


def test_wrong_codes_are_rate_limited_per_account_and_address(app_factory):
    app = app_factory(RATELIMIT_ENABLED=True, RATELIMIT_MFA_VERIFY="3 per hour",
                      RATELIMIT_STORAGE_URI="memory://")
    user_id = _user(app)
    secret = _enrol(app, user_id)
    make_flow(app, "mfa-limit", [{"type": "authenticator_validate", "name": "mfa-limit-v"}])
    with app.app_context():
        wizard = _run(app, "mfa-limit", pending_user_id=user_id)
        binding = wizard.step().binding_id
        for _ in range(3):
            step = wizard.submit(binding, MultiDict({"code": _wrong(secret)}))
            assert step.errors["code"] == ["That code is not right, or was used already."]
        limited = wizard.submit(binding, MultiDict({"code": _code(secret, 1)}))
        assert limited.errors["code"][0].startswith("Too many wrong codes.")
        # The right code was not even tried: it still works from another address.
        other = _run(app, "mfa-limit", pending_user_id=user_id)
        other.ctx.client_ip = "198.51.100.9"
        done = other.submit(other.step().binding_id, MultiDict({"code": _code(secret, 1)}))
        assert done.kind == "done"


# -- an enrollment flow with TOTP setup; the next sign-in asks for a code -------------------------


def test_enrolled_with_totp_then_asked_for_a_code(app, client):
    url = make_flow(app, "enrol-mfa", [
        {"type": "prompt", "name": "enrol-mfa-prompt", "prompts": [
            {"field_key": "username", "type": "username", "required": True},
            {"field_key": "password", "type": "password", "required": True},
        ]},
        {"type": "user_write", "name": "enrol-mfa-write"},
        {"type": "authenticator_totp", "name": "enrol-mfa-totp"},
        {"type": "user_login", "name": "enrol-mfa-login"},
    ])
    submit(client, url, {"username": "newbie", "password": TEST_PASSWORD})
    page = client.get(url).get_data(as_text=True)
    secret = SECRET_RE.search(page).group(1).replace(" ", "")
    codes = RECOVERY_RE.findall(submit(client, url, {"code": _code(secret)}).get_data(as_text=True))
    assert len(codes) == 10
    assert submit(client, url, {}).request.path == "/account/"
    with app.app_context():
        user_id = db.session.scalar(select(User.id).filter_by(username="newbie"))
        assert mfa.user_has_mfa(db.session.get(User, user_id))

    # Sign-in (until it is a flow: a validate + user login flow for the identified person).
    make_flow(app, "sign-in-mfa", [
        {"type": "authenticator_validate", "name": "sign-in-mfa-validate",
         "options": {"not_configured_action": "skip"}},
        {"type": "user_login", "name": "sign-in-mfa-login"},
    ])
    with app.app_context():
        wizard = _run(app, "sign-in-mfa", pending_user_id=user_id)
        step = wizard.step()
        assert step.kind == "page" and step.login_user_id is None  # a code first
        done = wizard.submit(step.binding_id, MultiDict({"code": _code(secret, 1)}))
        assert done.kind == "done" and done.login_user_id == user_id


def test_not_configured_configure_runs_the_setup_stage_in_place(app, client):
    """authentik's "configure": validation counts as passed, and the configuration stage runs
    instead; its codes page still follows its confirmation (the person now has a factor)."""
    user_id = _user(app)
    with app.app_context():
        db.session.add(Stage(name="mfa-setup-for-validate", type="authenticator_totp",
                             options={"friendly_name": "Set up at sign-in"}))
        db.session.commit()
        setup_id = db.session.scalar(select(Stage.id).filter_by(name="mfa-setup-for-validate"))
    url = _validate_flow(app, not_configured_action="configure",
                         configuration_stages=[setup_id])
    _login(client)
    page = client.get(url).get_data(as_text=True)
    assert "Set up an authenticator app" in page and "Two-step verification" not in page
    secret = SECRET_RE.search(page).group(1).replace(" ", "")
    codes = RECOVERY_RE.findall(submit(client, url, {"code": _code(secret)}).get_data(as_text=True))
    assert len(codes) == 10
    assert submit(client, url, {}).request.path == "/account/"
    with app.app_context():
        assert [d.name for d in mfa.list_devices(db.session.get(User, user_id),
                                                 confirmed_only=True)] == ["Set up at sign-in"]


def test_configure_without_a_configuration_stage_denies(app, client):
    _user(app)
    url = _validate_flow(app, not_configured_action="configure")
    _login(client)
    page = client.get(url)
    assert page.status_code == 403 and "no way to set one up here" in page.get_data(as_text=True)


def test_configuration_stages_travel_through_a_blueprint(app):
    from portal.access import Grants
    from portal.flows.blueprints import export_flow, import_blueprint

    from ...blueprint_helpers import empty_database

    with app.app_context():
        db.session.add(Stage(name="bp-setup", type="authenticator_totp", options={"digits": "8"}))
        db.session.commit()
        setup_id = db.session.scalar(select(Stage.id).filter_by(name="bp-setup"))
    make_flow(app, "bp-mfa", [{"type": "authenticator_validate", "name": "bp-validate", "options": {
        "not_configured_action": "configure", "configuration_stages": [setup_id],
        "device_classes": ["totp"]}}])
    with app.app_context():
        text = export_flow(db.session.scalar(select(Flow).filter_by(slug="bp-mfa")))
        assert "configuration_stages:\n    - !KeyOf 'stage-bp-setup'" in text
        empty_database()
        report = import_blueprint(text, actor=Grants(superuser=True))
        assert report.ok, report.errors
        validate = db.session.scalar(select(Stage).filter_by(name="bp-validate"))
        setup = db.session.scalar(select(Stage).filter_by(name="bp-setup"))
        assert validate.options["configuration_stages"] == [setup.id]
        assert setup.options["digits"] == "8"
        # authentik's other device classes are kept out, and the report says so.
        report = import_blueprint(
            "version: 1\nentries:\n- model: authentik_stages_authenticator_validate."
            "authenticatorvalidatestage\n  identifiers: {name: bp-validate}\n"
            "  attrs: {device_classes: [totp, webauthn]}\n", actor=Grants(superuser=True))
        assert report.ok and [n for c in report.changes for n in c.notes] == [
            "device_classes: 'webauthn' is not a kind of authenticator the portal has; ignored"]


def test_the_sign_in_flow_asks_for_a_code_only_of_people_with_an_authenticator(app, client):
    """The seeded default-authentication-flow: identification, password, then a code from the
    person's authenticator when they have one; everyone else goes straight in."""
    secret = _enrol(app, _user(app, "sam"))
    _user(app, "pat")
    page = _login(client, "sam").get_data(as_text=True)
    assert "Code from your authenticator app" in page
    assert client.get("/account/").status_code == 302  # not signed in before the code
    done = submit(client, "/if/flow/default-authentication-flow/", {"code": _code(secret, 1)})
    assert done.request.path == "/account/" and "sam" in done.get_data(as_text=True)
    submit(client, "/auth/logout", {}, page_url="/account/")
    other = app.test_client()
    assert _login(other, "pat").request.path == "/account/"
