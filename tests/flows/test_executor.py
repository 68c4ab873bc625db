"""portal.flows.executor without HTTP: a flow's authentication, pages and their numbers, stale
posts, sending a stage back to the page that asked, skipping a page with nothing to ask, and
what travels on the Step."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.auth import service as accounts
from portal.extensions import db
from portal.flows.stages import Next, StageType, register, unregister
from portal.models import FlowAuthentication, FlowSession, User

from ..conftest import TEST_PASSWORD
from ..flowkit import answer, begin, make_flow, resume


def _sam():
    return accounts.create_user(username="sam", email="sam@example.com", password=TEST_PASSWORD)


def _pages_flow(app, slug="pages", **kwargs):
    make_flow(app, slug, [
        {"type": "prompt", "name": f"{slug}-one", "prompts": [{"field_key": "colour", "type": "text"}]},
        {"type": "deny", "name": f"{slug}-never", "condition": {
            "type": "prompt_equals", "field": "colour", "value": "red"}, "evaluate_on_plan": False},
        {"type": "prompt", "name": f"{slug}-two", "prompts": [{"field_key": "shape", "type": "text"}]},
    ], **kwargs)


@pytest.mark.parametrize("rule,visitor,superuser,title", [
    (FlowAuthentication.REQUIRE_AUTHENTICATED, False, False, "Sign in required"),
    (FlowAuthentication.REQUIRE_SUPERUSER, False, False, "Sign in required"),
    (FlowAuthentication.REQUIRE_SUPERUSER, True, False, "Administrators only"),
    (FlowAuthentication.REQUIRE_UNAUTHENTICATED, True, False, "You are already signed in"),
])
def test_the_flows_authentication_is_checked_before_any_stage(app, rule, visitor, superuser, title):
    _pages_flow(app, authentication=rule)
    with app.app_context():
        user = _sam() if visitor else None
        wizard = begin("pages", user=user, superuser=superuser)
        step = wizard.step()
        assert (step.kind, step.title, step.status) == ("denied", title, 403)
        assert wizard.session.finished_at is not None
        # A POST is refused the same way, and stores nothing it was sent.
        again = resume(wizard.session, user=user, superuser=superuser)
        assert again.submit(1, {"colour": "blue"}).kind == "denied"
        assert "colour" not in (wizard.session.prompt_data or {})


@pytest.mark.parametrize("rule,visitor,superuser", [
    (FlowAuthentication.NONE, False, False), (FlowAuthentication.NONE, True, False),
    (FlowAuthentication.REQUIRE_AUTHENTICATED, True, False),
    (FlowAuthentication.REQUIRE_SUPERUSER, True, True),
    (FlowAuthentication.REQUIRE_UNAUTHENTICATED, False, False),
])
def test_a_visitor_the_rule_admits_gets_the_first_page(app, rule, visitor, superuser):
    _pages_flow(app, authentication=rule)
    with app.app_context():
        step = begin("pages", user=_sam() if visitor else None, superuser=superuser).step()
        assert (step.kind, step.number, step.count) == ("page", 1, 2)


def test_pages_advance_and_the_flow_ends_done(app):
    _pages_flow(app)
    with app.app_context():
        wizard = begin("pages")
        first = wizard.step()
        second = answer(wizard, first, {"colour": "blue"})
        assert (second.kind, second.number, second.count) == ("page", 2, 2)
        assert second.binding_id != first.binding_id
        # The next request (a new executor) picks up where the session is.
        wizard = resume(wizard.session)
        assert wizard.step().binding_id == second.binding_id
        done = answer(wizard, second, {"shape": "round"})
        assert done.kind == "done"
        assert wizard.session.prompt_data == {"colour": "blue", "shape": "round"}
        assert wizard.session.finished_at is not None


def test_a_post_for_another_page_just_shows_the_current_one(app):
    _pages_flow(app)
    with app.app_context():
        wizard = begin("pages")
        first = wizard.step()
        answer(wizard, first, {"colour": "blue"})
        stale = answer(wizard, first, {"colour": "green"})  # the back button's page
        assert stale.kind == "page" and stale.number == 2
        assert wizard.session.prompt_data == {"colour": "blue"}


def test_a_condition_checked_when_reached_ends_the_flow(app):
    _pages_flow(app)
    with app.app_context():
        wizard = begin("pages")
        step = answer(wizard, wizard.step(), {"colour": "red"})
        assert (step.kind, step.status) == ("denied", 403)


def test_a_later_stages_retry_sends_the_visitor_back_to_the_page_that_asked(app):
    make_flow(app, "taken", [
        {"type": "prompt", "name": "taken-page", "prompts": [{"field_key": "username",
                                                              "type": "username"}]},
        {"type": "user_write", "name": "taken-write"},
    ])
    with app.app_context():
        _sam()
        wizard = begin("taken")
        page = wizard.step()
        # Taken between the page and the write: the write's Retry goes back to the page.
        wizard.session.prompt_data = {"username": "SAM"}
        db.session.commit()
        wizard.session.position = 1
        step = wizard.step()
        assert step.kind == "page" and step.binding_id == page.binding_id
        assert step.form["username"].errors == ["This username is already taken."]
        assert db.session.scalar(select(FlowSession.errors).filter_by(id=wizard.session.id)) is None


class PassStage(StageType):
    """A test-only interactive type that has nothing to ask when the visitor is signed in."""

    type_name, label, model = "pass_test", "Pass", "example_stages_pass.passstage"
    interactive, template = True, "flow/consent.html"

    def already_done(self, ctx) -> bool:
        return ctx.current_user_id is not None

    def form(self, ctx, formdata=None):
        from wtforms.form import BaseForm

        form = BaseForm([])
        form.process(formdata)
        return form

    def submit(self, ctx, form):
        return Next()


@pytest.fixture
def pass_type():
    register(PassStage)
    yield PassStage
    unregister(PassStage.type_name)


def test_an_interactive_stage_with_nothing_to_ask_is_passed_by(app, pass_type):
    make_flow(app, "passing", [{"type": "pass_test", "name": "passing-stage"}])
    with app.app_context():
        assert begin("passing").step().kind == "page"
        assert begin("passing", user=_sam()).step().kind == "done"


def test_a_deleted_account_signs_the_browser_out_on_the_step(app):
    make_flow(app, "leave", [{"type": "user_delete", "name": "leave-delete"}],
              authentication=FlowAuthentication.REQUIRE_AUTHENTICATED)
    with app.app_context():
        sam = _sam()
        wizard = begin("leave", user=sam)
        first = wizard.step()
        assert first.sign_out is False
        step = answer(wizard, first, {"confirm": "y"})
        assert step.kind == "done" and step.sign_out is True and step.login_user_id is None
        assert db.session.scalar(select(User).filter_by(username="sam")) is None


# -- an existing account accepts an invitation (no HTTP) ------------------------------------------


def _invited_session(app, make_invitation, **options):
    from portal.invitations.service import invitation_token
    from portal.models import Invitation

    invitation_id, _link = make_invitation(**options)
    with app.app_context():
        token = invitation_token(db.session.get(Invitation, invitation_id))
    return invitation_id, token


def test_a_signed_in_visitor_with_an_invitation_is_asked_to_accept(app, make_invitation):
    from portal.models import Invitation

    with app.app_context():
        sam_id = _sam().id
    invitation_id, token = _invited_session(app, make_invitation, single_use=True)
    with app.app_context():
        user = db.session.get(User, sam_id)
        wizard = begin("default-enrollment-flow", user=user, token=token)
        step = wizard.step()
        assert (step.kind, step.user_id, step.invitation.id) == ("accept", sam_id, invitation_id)
        assert wizard.session.finished_at is None
        done = resume(wizard.session, user=user).submit(None, {"decision": "accept"})
        assert done.kind == "accepted" and done.notices[0][0] == "success"
        assert wizard.session.finished_at is not None
        assert db.session.get(Invitation, invitation_id).use_count == 1


def test_decline_ends_the_flow_and_consumes_nothing(app, make_invitation):
    from portal.models import Invitation

    with app.app_context():
        sam_id = _sam().id
    invitation_id, token = _invited_session(app, make_invitation)
    with app.app_context():
        user = db.session.get(User, sam_id)
        wizard = begin("default-enrollment-flow", user=user, token=token)
        assert wizard.step().kind == "accept"
        step = resume(wizard.session, user=user).submit(None, {"decision": "decline"})
        assert step.kind == "declined" and wizard.session.finished_at is not None
        assert db.session.get(Invitation, invitation_id).use_count == 0


def test_anything_but_accept_or_decline_shows_the_question_again(app, make_invitation):
    with app.app_context():
        sam_id = _sam().id
    _invitation_id, token = _invited_session(app, make_invitation)
    with app.app_context():
        user = db.session.get(User, sam_id)
        wizard = begin("default-enrollment-flow", user=user, token=token)
        assert resume(wizard.session, user=user).submit(None, {"decision": "both"}).kind == "accept"


def test_an_anonymous_invitee_is_offered_to_sign_in_on_the_first_page_only(app, make_invitation):
    _invitation_id, token = _invited_session(app, make_invitation)
    with app.app_context():
        wizard = begin("default-enrollment-flow", token=token)
        step = wizard.step()
        assert (step.kind, step.number, step.offers_sign_in) == ("page", 1, True)
        assert begin("default-enrollment-flow").step().offers_sign_in is False  # no invitation


def test_hand_off_gives_the_flow_session_a_new_key_once(app, make_invitation):
    from portal.flows import executor
    from portal.models import Flow

    with app.app_context():
        flow = db.session.scalar(select(Flow).filter_by(slug="default-enrollment-flow"))
        session, key = executor.start(flow, None, current_user=None,
                                      lifetime=timedelta(hours=1))
        new_key = executor.hand_off(session)
        assert new_key != key and len(new_key) >= 22
        assert executor.load(key, flow) is None
        assert executor.load(new_key, flow).id == session.id


@pytest.mark.parametrize("one_in, left", [(1, ["fresh"]), (0, ["expired", "fresh"])])
def test_storing_a_session_clears_expired_ones_by_chance(app, monkeypatch, one_in, left):
    """One store in CLEANUP_ONE_IN deletes the expired flow sessions (here: every store, or
    never), so the table stays bounded without a DELETE on every first page."""
    from portal.flows import executor
    from portal.models import Flow, utcnow

    make_flow(app, "tidy", [{"type": "prompt", "name": "tidy-page",
                             "prompts": [{"field_key": "answer", "name": "tidy-answer"}]}])
    with app.app_context():
        flow = db.session.scalar(select(Flow).filter_by(slug="tidy"))
        old, _ = executor.start(flow, None, current_user=None, lifetime=timedelta(minutes=5))
        old.expires_at = utcnow() - timedelta(minutes=1)
        db.session.commit()
        expired = old.id
        monkeypatch.setattr(executor, "CLEANUP_ONE_IN", one_in)
        fresh, _ = executor.start(flow, None, current_user=None, lifetime=timedelta(minutes=30))
        names = {expired: "expired", fresh.id: "fresh"}
        assert sorted(names[i] for i in db.session.scalars(select(FlowSession.id))) == left
