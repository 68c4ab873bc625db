"""Deny, consent and user-write stages, end to end through the wizard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from portal.extensions import db
from portal.models import ConsentRecord, Flow, FlowStageBinding, Group, Stage, User

from ...conftest import path_of, submit
from ...flowkit import make_flow
from ...helpers import NEW_PASSWORD

FLOW_URL = "/if/flow/default-enrollment-flow/"


def bind(app, stage: Stage, order: int, slug="default-enrollment-flow", **values) -> None:
    with app.app_context():
        flow = db.session.scalar(select(Flow).filter_by(slug=slug))
        db.session.add(stage)
        flow.bindings.append(FlowStageBinding(stage=stage, order=order, **values))
        db.session.commit()


def set_options(app, name: str, **options) -> None:
    with app.app_context():
        stage = db.session.scalar(select(Stage).filter_by(name=name))
        stage.options = {**stage.options, **options}
        db.session.commit()


def enroll(client, link, *, username="newbie", email="nia@example.com", extra_pages=()):
    """Walk the default flow; `extra_pages` are posted after the two prompt pages."""
    client.get(path_of(link))
    submit(client, FLOW_URL, {"username": username, "password": NEW_PASSWORD,
                              "password_repeat": NEW_PASSWORD})
    response = submit(client, FLOW_URL, {"name": "Nia", "email": email})
    for data in extra_pages:
        response = submit(client, FLOW_URL, data)
    return response


def closed_flow(app) -> str:
    """A flow that denies the red team, with a condition on an answer from its first page."""
    return make_flow(app, "closed", [
        {"type": "prompt", "name": "who", "prompts": [{"field_key": "team", "type": "text"}]},
        {"type": "deny", "name": "no-red", "options": {"deny_message": "Red team sign-ups are closed."},
         "evaluate_on_plan": False,
         "condition": {"type": "prompt_equals", "field": "team", "value": "red"}},
        {"type": "prompt", "name": "more", "prompts": [{"field_key": "final", "type": "text"}]},
    ])


def test_deny_stage_ends_the_flow_with_its_message(app, client):
    url = closed_flow(app)
    client.get(url)
    response = submit(client, url, {"team": "red"})
    assert response.status_code == 403
    assert "Red team sign-ups are closed." in response.get_data(as_text=True)
    # The flow is over: opening it again does not continue where it stopped.
    again = client.get(url, follow_redirects=True)
    assert 'name="final"' not in again.get_data(as_text=True)


def test_deny_stage_skipped_by_its_condition(app, client):
    url = closed_flow(app)
    client.get(url)
    assert 'name="final"' in submit(client, url, {"team": "blue"}).get_data(as_text=True)


def test_deny_stage_without_message_says_something_useful(app, client):
    url = make_flow(app, "closed", [{"type": "deny", "name": "bare"}])
    response = client.get(url)
    assert response.status_code == 403 and "Ask the person who invited you" in response.get_data(
        as_text=True)


def test_consent_is_stored_with_time_and_version(app, client, make_invitation):
    bind(app, Stage(name="terms", type="consent", options={
        "consent_title": "House rules", "consent_text": "Be kind.\nNo spam.",
        "consent_version": "2024-06"}), order=15)
    _, link = make_invitation()
    page = enroll(client, link).get_data(as_text=True)
    assert "House rules" in page and "Be kind." in page and "Version 2024-06" in page
    refused = submit(client, FLOW_URL, {}).get_data(as_text=True)
    assert "Tick this box to continue." in refused
    with app.app_context():
        assert db.session.scalar(select(ConsentRecord)) is None
    before = datetime.now(UTC)
    done = submit(client, FLOW_URL, {"accept": "y"})
    assert done.request.path == "/account/"
    with app.app_context():
        record = db.session.scalar(select(ConsentRecord))
        user = db.session.scalar(select(User).filter_by(username="newbie"))
        assert record.user_id == user.id and record.version == "2024-06"
        assert record.stage_name == "terms" and len(record.text_sha256) == 64
        assert before - timedelta(seconds=1) <= record.accepted_at <= datetime.now(UTC)


def test_consent_version_follows_the_text_when_not_set(app, client):
    url = make_flow(app, "terms-only", [
        {"type": "consent", "name": "t", "options": {"consent_text": "v1 text"}},
        {"type": "consent", "name": "t2", "options": {"consent_text": "v2 text"}},
    ])
    client.get(url)
    submit(client, url, {"accept": "y"})
    submit(client, url, {"accept": "y"})
    with app.app_context():
        versions = db.session.scalars(select(ConsentRecord.version).order_by(ConsentRecord.id)).all()
        assert len(versions) == 2 and versions[0] != versions[1] and all(len(v) == 12 for v in versions)
        assert db.session.scalar(select(ConsentRecord.user_id)) is None  # nobody signed up here


def test_user_write_options(app, client, make_invitation):
    with app.app_context():
        group = Group(name="engineering-team", attributes={})
        db.session.add(group)
        db.session.commit()
        group_id = group.id
    set_options(app, "default-enrollment-user-write", create_users_as_inactive=True,
                create_users_group=group_id, user_type="external",
                user_path_template="users/external/partners")
    _, link = make_invitation(attributes={"attributes": {"department": "Engineering"}})
    response = enroll(client, link)
    # Inactive users are not signed in by the login stage.
    assert response.request.path != "/account/"
    assert "Your account has been created" in response.get_data(as_text=True)
    with app.app_context():
        user = db.session.scalar(select(User).filter_by(username="newbie"))
        assert user.active is False and user.type == "external"
        assert user.path == "users/external/partners"
        assert [g.name for g in user.groups] == ["engineering-team"]
        assert user.attributes == {"department": "Engineering"}
