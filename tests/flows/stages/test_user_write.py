"""portal.flows.stages.user_write, driven through FlowExecutor without HTTP: the three
user_creation_modes, and what an update may and may not change."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal.audit import Action
from portal.auth import service as accounts
from portal.extensions import db
from portal.flows.context import note
from portal.models import AuditEvent, FlowAuthentication, Group, User
from portal.security.passwords import hash_password, verify_password

from ...conftest import TEST_PASSWORD
from ...flowkit import answer, begin, make_flow

NEW = "sturdy-orchid-lantern-51"


def _writer_flow(app, slug, mode, *, authentication=FlowAuthentication.NONE, prompts=(),
                 options=None):
    bindings = []
    if prompts:
        bindings.append({"type": "prompt", "name": f"{slug}-page",
                         "prompts": [{"field_key": k, "type": t, "required": False}
                                     for k, t in prompts]})
    bindings.append({"type": "user_write", "name": f"{slug}-write",
                     "options": {"user_creation_mode": mode, **(options or {})}})
    make_flow(app, slug, bindings, authentication=authentication)


def _user(username="sam", email="sam@example.com", **values) -> User:
    user = accounts.create_user(username=username, email=email, password=TEST_PASSWORD)
    for key, value in values.items():
        setattr(user, key, value)
    db.session.commit()
    return user


def _users() -> int:
    return db.session.scalar(select(func.count(User.id)))


def _events(action) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).filter_by(action=action)))


def test_always_create_makes_a_new_account_even_for_a_signed_in_visitor(app):
    _writer_flow(app, "always", "always_create")
    with app.app_context():
        sam = _user()
        wizard = begin("always", user=sam, prompt_data={"username": "second", "email": "s2@example.com"},
                       password_hash=hash_password(NEW))
        step = wizard.step()
        assert step.kind == "done"
        assert _users() == 2
        created = db.session.get(User, step.user_id)
        assert created.username == "second" and created.id != sam.id


def test_create_when_required_updates_the_signed_in_visitor(app):
    _writer_flow(app, "profile", "create_when_required",
                 authentication=FlowAuthentication.REQUIRE_AUTHENTICATED)
    with app.app_context():
        sam = _user(name="Sam")
        wizard = begin("profile", user=sam, prompt_data={"name": "Samira", "email": "samira@example.com",
                                                         "team": "blue"})
        step = wizard.step()
        assert step.kind == "done" and step.user_id == sam.id
        assert _users() == 1
        db.session.refresh(sam)
        assert (sam.name, sam.email, sam.username) == ("Samira", "samira@example.com", "sam")
        assert sam.attributes == {"team": "blue"}
        assert verify_password(sam.password_hash, TEST_PASSWORD)  # no password asked: unchanged
        [event] = _events(Action.USER_UPDATED)
        assert event.actor_id == sam.id and event.detail == {
            "flow": "profile", "fields": ["email", "name", "attributes"]}
        assert _events(Action.PASSWORD_SET) == _events(Action.PASSWORD_CHANGED) == []


def test_create_when_required_creates_when_there_is_nobody(app):
    _writer_flow(app, "join", "create_when_required")
    with app.app_context():
        wizard = begin("join", prompt_data={"username": "fresh", "email": "f@example.com"},
                       password_hash=hash_password(NEW))
        step = wizard.step()
        assert step.kind == "done"
        assert db.session.get(User, step.user_id).username == "fresh" and _users() == 1


def test_never_create_without_a_pending_user_refuses_and_writes_nothing(app):
    _writer_flow(app, "recover", "never_create")
    with app.app_context():
        wizard = begin("recover", prompt_data={"username": "ghost"}, password_hash=hash_password(NEW))
        step = wizard.step()
        assert (step.kind, step.title, step.status) == ("denied", "There is no account to update", 400)
        assert _users() == 0


def test_never_create_sets_the_pending_users_password_and_ends_their_sessions(app):
    """A recovery flow: the identification stage noted the account; nobody is signed in."""
    _writer_flow(app, "recover", "never_create")
    with app.app_context():
        sam = _user()
        generation = sam.session_generation
        wizard = begin("recover", password_hash=hash_password(NEW))
        note(wizard.session, "pending_user_id", sam.id)
        db.session.commit()
        step = wizard.step()
        assert step.kind == "done" and step.user_id == sam.id
        db.session.refresh(sam)
        assert verify_password(sam.password_hash, NEW)
        assert not verify_password(sam.password_hash, TEST_PASSWORD)
        assert sam.session_generation == generation + 1  # every session of theirs has ended
        assert wizard.session.password_hash is None  # the hash lives on the user only
        assert step.login_user_id is None  # nobody was signed in: a user login stage decides
        [event] = _events(Action.PASSWORD_SET)
        assert event.actor_id == sam.id and event.detail == {"flow": "recover"}
        assert _users() == 1


def test_a_signed_in_visitors_new_password_keeps_this_browser_signed_in(app):
    _writer_flow(app, "new-password", "never_create",
                 authentication=FlowAuthentication.REQUIRE_AUTHENTICATED)
    with app.app_context():
        sam = _user()
        step = begin("new-password", user=sam, password_hash=hash_password(NEW)).step()
        assert step.kind == "done" and step.login_user_id == sam.id  # signed in again
        assert len(_events(Action.PASSWORD_CHANGED)) == 1 and _events(Action.PASSWORD_SET) == []


def test_an_update_keeps_the_username_rules(app):
    """A taken username sends the visitor back to the page that asked; their own is fine; an
    email-shaped one must be the account's address."""
    _writer_flow(app, "rename", "never_create", authentication=FlowAuthentication.REQUIRE_AUTHENTICATED,
                 prompts=[("username", "username"), ("email", "email")])
    with app.app_context():
        sam = _user()
        _user("taken", "taken@example.com")
        wizard = begin("rename", user=sam)
        page = wizard.step()
        step = answer(wizard, page, {"username": "TAKEN", "email": "sam@example.com"})
        assert step.kind == "page" and step.errors == {"username": ["This username is already taken."]}
        step = answer(wizard, step, {"username": "other@example.com", "email": "sam@example.com"})
        assert step.errors == {"username": [
            "A username may contain @ only if it is the email address of this account."]}
        step = answer(wizard, step, {"username": "Sam", "email": "sam@example.com"})  # their own
        assert step.kind == "done"
        db.session.refresh(sam)
        assert sam.username == "Sam"
        assert db.session.scalar(select(User.username).filter_by(id=sam.id)) == "Sam"


def test_an_update_neither_grants_groups_nor_touches_a_deactivated_account(app):
    with app.app_context():
        group = Group(name="crew", attributes={})
        db.session.add(group)
        db.session.commit()
        group_id = group.id
    _writer_flow(app, "grant", "create_when_required", options={"create_users_group": group_id})
    with app.app_context():
        sam = _user()
        assert begin("grant", user=sam, prompt_data={"name": "S"}).step().kind == "done"
        db.session.refresh(sam)
        assert sam.groups == []  # the stage's group is for new accounts only
        sam.active = False
        db.session.commit()
        step = begin("grant", user=sam, prompt_data={"name": "T"}).step()
        assert (step.kind, step.title) == ("denied", "This account is deactivated")
        db.session.refresh(sam)
        assert sam.name == "S"


@pytest.mark.parametrize("mode", ["create_when_required", "never_create"])
def test_the_written_account_becomes_the_pending_user(app, mode):
    _writer_flow(app, "pending", mode)
    with app.app_context():
        sam = _user()
        wizard = begin("pending", user=sam)
        assert wizard.step().kind == "done"
        assert wizard.ctx.pending_user() == sam
        assert wizard.session.prompt_data["_portal.pending_user_id"] == sam.id


@pytest.mark.parametrize("bound, verified", [(True, "vera@example.com"), (False, None)])
def test_enrolling_with_a_recipient_bound_invitation_proves_the_address(app, make_invitation,
                                                                        bound, verified):
    """The invitation was addressed to that mailbox (and held enrollment to it): the new
    account's address counts as verified. An open link proves nothing."""
    from portal.invitations.service import invitation_token
    from portal.models import Invitation

    make_flow(app, "invited", [{"type": "invitation", "name": "invited-check"},
                               {"type": "user_write", "name": "invited-write"}])
    invitation_id, _link = make_invitation(flow_slug="invited",
                                           **({"email": "vera@example.com"} if bound else {}))
    with app.app_context():
        token = invitation_token(db.session.get(Invitation, invitation_id))
        wizard = begin("invited", token=token,
                       prompt_data={"username": "vera", "email": "vera@example.com"})
        assert wizard.step().kind == "done"
        user = db.session.get(User, wizard.session.user_id)
        assert accounts.verified_email(user) == verified
