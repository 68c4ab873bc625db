"""Sign-in as a flow: the identification, password and user login stages, driven through
FlowExecutor without HTTP and through the seeded default-authentication-flow behind /auth/login."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from portal.audit import Action
from portal.auth import service as accounts
from portal.extensions import db
from portal.flows import executor
from portal.flows.defaults import DEFAULT_AUTHENTICATION_SLUG, ensure_default_authentication_flow
from portal.flows.executor import FlowExecutor
from portal.flows.stages.user_login import parse_session_duration
from portal.models import AuditEvent, Flow, FlowStageBinding, Stage

from ..blueprint_helpers import OPERATOR, blueprint_text, needs_blueprints
from ..conftest import SIGN_IN_FLOW, TEST_PASSWORD, sign_in, submit
from ..flowkit import make_flow

WRONG = "The username or password is not right."


def _sign_in_flow(app, slug="signin", identification=None, password=None, login=None):
    return make_flow(app, slug, [
        {"type": "identification", "name": f"{slug}-identification", "options": identification or {}},
        {"type": "password", "name": f"{slug}-password", "options": password or {}},
        {"type": "user_login", "name": f"{slug}-login", "options": login or {}},
    ])


class Walk:
    """One visitor's way through a flow, without HTTP: what the executor answers to each POST."""

    def __init__(self, slug: str):
        flow = db.session.scalar(select(Flow).filter_by(slug=slug))
        self.session, _ = executor.start(flow, None, current_user=None,
                                         lifetime=timedelta(hours=1))
        self.step = self._executor().step()

    def _executor(self) -> FlowExecutor:
        return FlowExecutor(self.session, client_ip="192.0.2.1")

    def post(self, **values):
        self.step = self._executor().submit(self.step.binding_id, MultiDict(values))
        return self.step

    @property
    def stage(self) -> str:
        return self.step.stage.type_name if self.step.kind == "page" else self.step.kind


def _failed_events() -> int:
    return db.session.scalar(select(func.count(AuditEvent.id))
                             .where(AuditEvent.action == Action.SIGN_IN_FAILED))


@pytest.fixture
def sam(app):
    with app.app_context():
        return accounts.create_user(username="sam", email="sam@example.com",
                                    password=TEST_PASSWORD).id


# -- the stages, without HTTP ---------------------------------------------------------------------


def test_identification_then_password_signs_in_the_account_either_identifier_names(app, sam):
    _sign_in_flow(app)
    with app.app_context():
        for identifier in ("SAM", "Sam@Example.com"):
            walk = Walk("signin")
            assert walk.stage == "identification"
            assert walk.post(login=identifier).kind == "page" and walk.stage == "password"
            step = walk.post(password=TEST_PASSWORD)
            assert (step.kind, step.login_user_id, step.login_lifetime) == ("done", sam, None)


def test_unknown_accounts_fail_at_the_password_like_a_wrong_password(app, sam):
    _sign_in_flow(app)
    with app.app_context():
        known, unknown = Walk("signin"), Walk("signin")
        known.post(login="sam")
        unknown.post(login="nobody@example.com")
        assert known.stage == unknown.stage == "password"  # pretend_user_exists (the default)
        assert unknown.session.user_id is None
        for walk in (known, unknown):
            step = walk.post(password="not-the-password")
            assert (step.kind, step.stage.type_name, step.errors) == ("page", "password",
                                                                     {"password": [WRONG]})
        assert unknown.post(password=TEST_PASSWORD).errors == {"password": [WRONG]}
        assert _failed_events() == 3


def test_without_pretending_an_unknown_identifier_is_refused_on_its_page(app, sam):
    _sign_in_flow(app, identification={"pretend_user_exists": False})
    with app.app_context():
        walk = Walk("signin")
        step = walk.post(login="nobody")
        assert (walk.stage, step.errors) == ("identification", {"login": ["Failed to authenticate."]})
        assert walk.post(login="sam").kind == "page" and walk.stage == "password"


def test_user_fields_limit_what_identifies(app, sam):
    _sign_in_flow(app, identification={"user_fields": ["email"], "pretend_user_exists": False})
    with app.app_context():
        walk = Walk("signin")
        assert walk.step.form["login"].label.text == "Email"
        assert walk.post(login="sam").errors == {"login": ["Failed to authenticate."]}
        assert walk.post(login="SAM@example.com").kind == "page" and walk.stage == "password"


def test_a_deactivated_account_fails_like_an_unknown_one(app, sam, admin):
    _sign_in_flow(app)
    with app.app_context():
        accounts.set_active(db.session.get(accounts.User, sam), False,
                            actor=db.session.get(accounts.User, admin))
        walk = Walk("signin")
        walk.post(login="sam")
        assert walk.stage == "password" and walk.session.user_id is None
        assert walk.post(password=TEST_PASSWORD).errors == {"password": [WRONG]}


def test_failed_attempts_before_cancel_ends_the_flow(app, sam):
    _sign_in_flow(app, password={"failed_attempts_before_cancel": "2"})
    with app.app_context():
        walk = Walk("signin")
        walk.post(login="sam")
        assert walk.post(password="wrong-1").kind == "page"
        step = walk.post(password="wrong-2")
        assert (step.kind, step.title) == ("denied", "Sign-in cancelled")
        assert walk.session.finished_at is not None
        assert _failed_events() == 2


def test_user_login_refuses_an_identification_no_stage_checked(app, sam):
    make_flow(app, "no-password", [
        {"type": "identification", "name": "np-identification"},
        {"type": "user_login", "name": "np-login"},
    ])
    with app.app_context():
        walk = Walk("no-password")
        step = walk.post(login="sam")
        assert (step.kind, step.login_user_id) == ("denied", None)


def test_an_inline_password_stage_checks_the_password_on_the_identification_page(app, sam):
    with app.app_context():
        checker = Stage(name="inline-password", type="password",
                        options={"failed_attempts_before_cancel": "2"})
        db.session.add(checker)
        db.session.commit()
        checker_id = checker.id
    make_flow(app, "inline", [
        {"type": "identification", "name": "inline-identification",
         "options": {"password_stage": checker_id}},
        {"type": "user_login", "name": "inline-login"},
    ])
    with app.app_context():
        for login in ("sam", "nobody"):  # the same answer, unknown account or not
            walk = Walk("inline")
            assert set(walk.step.form._fields) == {"login", "password"}
            step = walk.post(login=login, password="wrong-password")
            assert (walk.stage, step.errors) == ("identification", {"password": [WRONG]})
        assert _failed_events() == 2
        walk = Walk("inline")
        step = walk.post(login="sam@example.com", password=TEST_PASSWORD)
        assert (step.kind, step.login_user_id) == ("done", sam)


def test_session_duration_reaches_the_step(app, sam):
    _sign_in_flow(app, login={"session_duration": "days=30"})
    with app.app_context():
        walk = Walk("signin")
        walk.post(login="sam")
        assert walk.post(password=TEST_PASSWORD).login_lifetime == timedelta(days=30)


@pytest.mark.parametrize("text,expected", [
    ("seconds=0", timedelta(0)), ("hours=2", timedelta(hours=2)),
    ("days=1;hours=12", timedelta(days=1, hours=12)), ("", timedelta(0)),
])
def test_parse_session_duration(text, expected):
    assert parse_session_duration(text) == expected


@pytest.mark.parametrize("text", ["2 hours", "hours=", "years=1", "days=400"])
def test_parse_session_duration_refuses(text):
    with pytest.raises(ValueError):
        parse_session_duration(text)


# -- the seeded flow, through HTTP ----------------------------------------------------------------


def _normalised(html: str, *words: str) -> str:
    """The page with what differs by design (its CSRF token, the typed identifier) taken out."""
    html = re.sub(r'name="csrf_token" value="[^"]+"', 'name="csrf_token" value=""', html)
    for word in words:
        html = html.replace(word, "IDENTIFIER")
    return html


def test_unknown_and_known_accounts_get_the_same_pages(app, admin):
    pages = {}
    for login in ("admin", "nobody"):
        client = app.test_client()
        start = client.get("/auth/login")
        password_page = submit(client, start.headers["Location"], {"login": login})
        wrong = submit(client, SIGN_IN_FLOW, {"password": "not-the-password"})
        pages[login] = (password_page.status_code, _normalised(password_page.get_data(as_text=True), login),
                        wrong.status_code, _normalised(wrong.get_data(as_text=True), login))
    assert pages["admin"] == pages["nobody"]
    assert pages["admin"][2] == 200 and WRONG in pages["admin"][3]


def test_sign_in_keeps_a_same_site_next_and_refuses_others(app, admin):
    response = sign_in(app.test_client(), next="/admin/users/?page=2", follow_redirects=False)
    assert response.headers["Location"] == "/admin/users/?page=2"
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"):
        response = sign_in(app.test_client(), next=target, follow_redirects=False)
        assert response.headers["Location"] == "/t/default/admin/", target
        # The flow's own address, opened with a bad next, drops it as well.
        client = app.test_client()
        submit(client, f"{SIGN_IN_FLOW}?next={target}", {"login": "admin"})
        response = submit(client, SIGN_IN_FLOW, {"password": TEST_PASSWORD}, follow_redirects=False)
        assert response.headers["Location"] == "/t/default/admin/", target


def test_sign_in_records_the_audit_events(app, admin):
    client = app.test_client()
    sign_in(client, password="wrong-password")
    sign_in(client)
    with app.app_context():
        actions = db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
        assert actions == [Action.SIGN_IN_FAILED, Action.SIGN_IN_SUCCEEDED]


def test_a_deny_stage_with_a_condition_bound_into_sign_in_is_enforced(app, admin):
    """An admin adds a stage to sign-in like to any flow: here a deny for everyone without an
    invitation in effect (that is, everyone signing in), after the password."""
    assert sign_in(app.test_client(), follow_redirects=False).status_code == 302
    with app.app_context():
        flow = db.session.scalar(select(Flow).filter_by(slug=DEFAULT_AUTHENTICATION_SLUG))
        stage = Stage(name="sign-in-closed", type="deny",
                      options={"deny_message": "Sign-in is closed for maintenance."})
        flow.bindings.append(FlowStageBinding(
            stage=stage, order=50, condition={"type": "invitation_in_effect", "negate": True}))
        db.session.commit()
    client = app.test_client()
    response = sign_in(client, follow_redirects=False)
    assert response.status_code == 403
    assert "Sign-in is closed for maintenance." in response.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302  # not signed in


def _lifetime(client):
    with client.session_transaction() as session:
        return session.get("lifetime"), session.permanent


def test_user_login_session_duration_and_stay_signed_in(app, admin):
    client = app.test_client()
    response = sign_in(client, follow_redirects=False)
    assert "Expires=" not in response.headers["Set-Cookie"]  # until the browser closes
    assert _lifetime(client) == (None, False)
    with app.app_context():
        stage = db.session.scalar(select(Stage).filter_by(name="default-authentication-login"))
        stage.options = {"session_duration": "hours=8", "remember_me_offset": "days=7"}
        db.session.commit()
    for ticked, seconds in ((False, 8 * 3600), (True, 8 * 3600 + 7 * 86400)):
        client = app.test_client()
        page = sign_in(client)
        assert "Stay signed in" in page.get_data(as_text=True)
        response = submit(client, SIGN_IN_FLOW, {"remember_me": "y"} if ticked else {},
                          follow_redirects=False)
        assert response.headers["Location"] == "/t/default/admin/"
        assert "Expires=" in response.headers["Set-Cookie"]
        assert _lifetime(client) == (seconds, True)
        assert client.get("/admin/").status_code == 200


def test_a_session_duration_shorter_than_the_absolute_timeout_ends_the_sign_in(app, admin):
    with app.app_context():
        stage = db.session.scalar(select(Stage).filter_by(name="default-authentication-login"))
        stage.options = {"session_duration": "minutes=5"}
        db.session.commit()
    client = app.test_client()
    sign_in(client)
    assert client.get("/admin/").status_code == 200
    with client.session_transaction() as session:
        session["signed_in_at"] -= 6 * 60
        session["seen_at"] -= 30
    assert client.get("/admin/").status_code == 302


def test_the_sign_in_page_links_to_recovery_and_enrollment_flows(app):
    with app.app_context():
        stage = db.session.scalar(select(Stage).filter_by(
            name="default-authentication-identification"))
        enrollment = db.session.scalar(select(Flow).filter_by(slug="default-enrollment-flow"))
        stage.options = {**stage.options, "recovery_flow": enrollment.id,
                         "enrollment_flow": enrollment.id}
        db.session.commit()
    html = app.test_client().get("/auth/login", follow_redirects=True).get_data(as_text=True)
    assert '<a href="/if/flow/default-enrollment-flow/">Forgot password?</a>' in html
    assert '<a href="/if/flow/default-enrollment-flow/">Sign up</a>' in html


def test_the_authentication_flow_is_seeded_once_and_ensured_on_upgrade(app, runner):
    with app.app_context():
        db.session.delete(db.session.scalar(select(Flow).filter_by(slug=DEFAULT_AUTHENTICATION_SLUG)))
        db.session.commit()
    # An install upgraded without `flask seed`: the sign-in page still works.
    assert app.test_client().get("/auth/login", follow_redirects=True).status_code == 200
    for _ in range(2):
        assert runner.invoke(args=["seed", "--no-setup-link"]).exit_code == 0
    with app.app_context():
        ensure_default_authentication_flow()
        flows = db.session.scalars(select(Flow).filter_by(slug=DEFAULT_AUTHENTICATION_SLUG)).all()
        assert len(flows) == 1
        assert [(b.order, b.stage.type) for b in flows[0].bindings] == [
            (10, "identification"), (20, "password"), (30, "authenticator_validate"),
            (100, "user_login")]


@needs_blueprints
def test_the_recovery_blueprint_keeps_every_identification_and_login_attribute(app):
    from portal.flows.blueprints import import_blueprint

    with app.app_context():
        report = import_blueprint(blueprint_text("flows-recovery-email-verification.yaml"),
                                  actor=OPERATOR)
        assert report.ok, report.errors
        mine = {"authentik_stages_identification.identificationstage",
                "authentik_stages_user_login.userloginstage"}
        notes = {c.model: c.notes for c in report.changes if c.model in mine}
        assert notes == {model: [] for model in mine}
        stage = db.session.scalar(select(Stage).filter_by(name="default-recovery-identification"))
        assert stage.options["user_fields"] == ["email", "username"]
