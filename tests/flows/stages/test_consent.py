"""portal.flows.stages.consent without HTTP: authentik's mode (always_require, permanent,
expiring with consent_expire_in), remembered per person, stage and version of the text."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.auth import service as accounts
from portal.extensions import db
from portal.models import ConsentRecord, FlowAuthentication, Stage, utcnow

from ...conftest import TEST_PASSWORD
from ...flowkit import answer, begin, make_flow

ACCEPT = {"accept": "y"}


def _terms_flow(app, mode, **options):
    make_flow(app, "terms", [{"type": "consent", "name": "terms-stage", "options": {
        "consent_text": "Be kind.", "consent_version": "v1", "mode": mode, **options}}],
        authentication=FlowAuthentication.REQUIRE_AUTHENTICATED)


def _sam():
    return accounts.create_user(username="sam", email="sam@example.com", password=TEST_PASSWORD)


def _run(user):
    """One visit: the kind of the first step, after accepting if a page is shown."""
    wizard = begin("terms", user=user)
    step = wizard.step()
    if step.kind == "page":
        assert answer(wizard, step, ACCEPT).kind == "done"
        return "asked"
    return step.kind


def _records(user) -> list[ConsentRecord]:
    return list(db.session.scalars(select(ConsentRecord).filter_by(user_id=user.id)
                                   .order_by(ConsentRecord.id)))


def test_always_require_asks_every_time(app):
    _terms_flow(app, "always_require")
    with app.app_context():
        sam = _sam()
        assert [_run(sam), _run(sam)] == ["asked", "asked"]
        assert len(_records(sam)) == 2


def test_permanent_asks_once_per_version(app):
    _terms_flow(app, "permanent")
    with app.app_context():
        sam = _sam()
        assert [_run(sam), _run(sam)] == ["asked", "done"]
        [record] = _records(sam)
        assert (record.version, record.stage_name) == ("v1", "terms-stage")
        stage = db.session.scalar(select(Stage).filter_by(name="terms-stage"))
        stage.options = {**stage.options, "consent_version": "v2"}  # new terms: ask again
        db.session.commit()
        assert [_run(sam), _run(sam)] == ["asked", "done"]
        assert [r.version for r in _records(sam)] == ["v1", "v2"]


def test_another_person_is_asked_for_themselves(app):
    _terms_flow(app, "permanent")
    with app.app_context():
        sam = _sam()
        kim = accounts.create_user(username="kim", email="kim@example.com", password=TEST_PASSWORD)
        assert [_run(sam), _run(kim), _run(kim)] == ["asked", "asked", "done"]


@pytest.mark.parametrize("age,expected", [(timedelta(weeks=3), "done"), (timedelta(weeks=5), "asked")])
def test_expiring_remembers_for_consent_expire_in(app, age, expected):
    _terms_flow(app, "expiring", consent_expire_in="weeks=4")
    with app.app_context():
        sam = _sam()
        assert _run(sam) == "asked"
        [record] = _records(sam)
        record.accepted_at = utcnow() - age
        db.session.commit()
        assert _run(sam) == expected


def test_an_unreadable_stored_expiry_asks_again(app):
    _terms_flow(app, "expiring", consent_expire_in="a while")  # written by hand, not by a form
    with app.app_context():
        sam = _sam()
        assert [_run(sam), _run(sam)] == ["asked", "asked"]


def test_a_visitor_the_flow_does_not_know_yet_is_always_asked(app):
    """Enrollment: nobody is pending until user write; the record is attached to the new user."""
    make_flow(app, "join-terms", [
        {"type": "consent", "name": "join-consent", "options": {"consent_text": "Rules.",
                                                                "mode": "permanent"}},
        {"type": "user_write", "name": "join-write"},
    ])
    with app.app_context():
        wizard = begin("join-terms", prompt_data={"username": "newbie"})
        page = wizard.step()
        assert page.kind == "page"
        done = answer(wizard, page, ACCEPT)
        assert done.kind == "done"
        [record] = db.session.scalars(select(ConsentRecord)).all()
        assert record.user_id == done.user_id is not None
