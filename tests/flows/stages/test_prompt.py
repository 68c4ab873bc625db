"""portal.flows.stages.prompt without HTTP: answers kept, passwords only as a hash."""

from __future__ import annotations

from portal.security.passwords import verify_password

from ...flowkit import answer, begin, make_flow

PASSWORD = "quiet-harbour-violet-93"


def _flow(app):
    make_flow(app, "ask", [{"type": "prompt", "name": "ask-page", "prompts": [
        {"field_key": "username", "type": "username"},
        {"field_key": "password", "type": "password"},
        {"field_key": "password_repeat", "type": "password"}]}])


def test_answers_are_kept_and_the_password_only_as_a_hash(app):
    _flow(app)
    with app.app_context():
        wizard = begin("ask")
        step = answer(wizard, wizard.step(), {"username": "nia", "password": PASSWORD,
                                              "password_repeat": PASSWORD})
        assert step.kind == "done"
        assert wizard.session.prompt_data == {"username": "nia"}
        assert verify_password(wizard.session.password_hash, PASSWORD)


def test_passwords_that_differ_are_refused_and_nothing_is_kept(app):
    _flow(app)
    with app.app_context():
        wizard = begin("ask")
        step = answer(wizard, wizard.step(), {"username": "nia", "password": PASSWORD,
                                              "password_repeat": PASSWORD + "x"})
        assert step.kind == "page" and step.errors == {"password_repeat": ["The passwords do not match."]}
        assert wizard.session.prompt_data == {} and wizard.session.password_hash is None
