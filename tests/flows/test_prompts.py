"""Every prompt type, through the wizard with CSRF on: what it shows, accepts and refuses."""

from __future__ import annotations

import base64
import re

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.flows.prompts import PROMPT_TYPES
from portal.models import FlowSession

from ..flowkit import latest_session, make_flow
from ..helpers import file_flow, one_prompt_flow, post, upload

AUTHENTIK_TYPES = {
    "text", "text_area", "text_read_only", "text_area_read_only", "username", "email", "password",
    "number", "checkbox", "radio-button-group", "dropdown", "date", "date-time", "file",
    "separator", "hidden", "static", "ak-locale", "alert_info", "alert_warning", "alert_danger",
}


def test_the_portal_knows_all_of_authentiks_prompt_types():
    assert set(PROMPT_TYPES) == AUTHENTIK_TYPES






def accepted(app, response, key="answer"):
    assert response.status_code == 200
    assert "Please correct" not in response.get_data(as_text=True), response.get_data(as_text=True)
    return latest_session(app).prompt_data.get(key)


def refused(response, message):
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Please correct" in html and message in html, html
    return html


@pytest.mark.parametrize("kind,bad,message,good,stored", [
    ("text", "", "This field is required.", "  Ada  ", "Ada"),
    ("text_area", "", "This field is required.", "line one\r\nline two", "line one\r\nline two"),
    ("username", "has space", "Use letters, digits", "ada.l+1@x", "ada.l+1@x"),
    ("email", "not-an-address", "Enter a valid email address", "Ada@Example.COM", "Ada@example.com"),
    ("number", "forty", "Not a valid decimal value", "42", 42),
    ("number", "", "This field is required.", "2.5", 2.5),
    ("date", "2024-13-45", "Not a valid date value", "2024-02-29", "2024-02-29"),
    ("date-time", "yesterday", "Not a valid datetime value", "2024-02-29T10:30",
     "2024-02-29T10:30:00"),
    ("ak-locale", "xx", "Not a valid choice", "de", "de"),
])
def test_typed_prompts_validate_and_store(app, client, kind, bad, message, good, stored):
    url = one_prompt_flow(app, type=kind, required=True)
    html = refused(post(client, url, {"answer": bad}), message)
    if bad and kind != "ak-locale":  # what was typed is kept (a select offers only its choices)
        assert bad in html
    assert accepted(app, post(client, url, {"answer": good})) == stored


@pytest.mark.parametrize("kind", ["dropdown", "radio-button-group"])
def test_choice_prompts_accept_only_their_choices(app, client, kind):
    url = one_prompt_flow(app, type=kind, required=True,
                          choices=["red", {"value": "blue", "label": "Ocean blue"}])
    page = client.get(url).get_data(as_text=True)
    assert "Ocean blue" in page and 'value="red"' in page
    refused(post(client, url, {"answer": "green"}), "Not a valid choice")
    refused(post(client, url, {}), "")
    assert accepted(app, post(client, url, {"answer": "blue"})) == "blue"


def test_optional_dropdown_may_stay_empty(app, client):
    url = one_prompt_flow(app, type="dropdown", required=False, choices=["a", "b"])
    assert accepted(app, post(client, url, {"answer": ""})) in ("", None)


def test_checkbox_required_means_ticked(app, client):
    url = one_prompt_flow(app, type="checkbox", required=True, label="I agree")
    refused(post(client, url, {}), "Tick this box to continue.")
    assert accepted(app, post(client, url, {"answer": "y"})) is True


def test_optional_checkbox_stores_false(app, client):
    url = one_prompt_flow(app, type="checkbox", required=False)
    assert accepted(app, post(client, url, {})) is False


def test_password_prompt_checks_the_policy_and_stores_only_a_hash(app, client):
    url = make_flow(app, "probe", [{"type": "prompt", "name": "pw", "prompts": [
        {"field_key": "password", "type": "password"},
        {"field_key": "password_repeat", "type": "password"}]}])
    refused(post(client, url, {"password": "short1", "password_repeat": "short1"}),
            "Use at least 8 characters.")
    accepted(app, post(client, url, {"password": "violet-kettle-harbour-42",
                                     "password_repeat": "violet-kettle-harbour-42"}))
    session = latest_session(app)
    assert "password" not in session.prompt_data
    assert "violet" not in str(session.prompt_data)


@pytest.mark.parametrize("kind", ["text_read_only", "text_area_read_only"])
def test_read_only_prompts_show_their_value_and_ignore_posts(app, client, kind):
    url = one_prompt_flow(app, type=kind, initial_value="Set by the admin", required=True)
    page = client.get(url).get_data(as_text=True)
    assert "Set by the admin" in page and "readonly" in page
    response = post(client, url, {"answer": "tampered"})
    assert "tampered" not in str(latest_session(app).prompt_data)
    assert "Please correct" not in response.get_data(as_text=True)


def test_hidden_prompt_keeps_its_value_whatever_is_posted(app, client):
    url = one_prompt_flow(app, type="hidden", initial_value="campaign-7")
    page = client.get(url).get_data(as_text=True)
    assert re.search(r'type="hidden"[^>]*value="campaign-7"|value="campaign-7"[^>]*type="hidden"', page)
    assert accepted(app, post(client, url, {"answer": "tampered"})) == "campaign-7"


@pytest.mark.parametrize("kind,css", [
    ("static", "static"), ("separator", None), ("alert_info", "flash-info"),
    ("alert_warning", "flash-warning"), ("alert_danger", "flash-danger"),
])
def test_display_prompts_show_text_and_take_no_input(app, client, kind, css):
    url = make_flow(app, "probe", [{"type": "prompt", "name": "show", "prompts": [
        {"field_key": "note", "type": kind, "label": "Read me", "initial_value": "Shown text"},
        {"field_key": "answer", "type": "text"}]}])
    page = client.get(url).get_data(as_text=True)
    assert 'name="note"' not in page
    if kind == "separator":
        assert "<hr>" in page
    else:
        assert "Shown text" in page and (css is None or css in page)
    assert accepted(app, post(client, url, {"answer": "x", "note": "posted"}))
    assert "note" not in latest_session(app).prompt_data


def test_placeholder_help_text_and_initial_value_are_shown(app, client):
    url = one_prompt_flow(app, type="text", placeholder="e.g. Oslo", help_text="Where you work.",
                          initial_value="Bergen", label="City")
    page = client.get(url).get_data(as_text=True)
    assert 'placeholder="e.g. Oslo"' in page and "Where you work." in page
    assert 'value="Bergen"' in page and ">City<" in page


def test_prompts_are_shown_in_their_order(app, client):
    url = make_flow(app, "probe", [{"type": "prompt", "name": "ordered", "prompts": [
        {"field_key": "second", "type": "text", "order": 2},
        {"field_key": "first", "type": "text", "order": 1}]}])
    page = client.get(url).get_data(as_text=True)
    assert page.index('name="first"') < page.index('name="second"')


# -- file prompts ------------------------------------------------------------------------------





def test_file_prompt_form_is_multipart_with_an_accept_hint(app, client):
    page = client.get(file_flow(app)).get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in page and 'accept=".pdf,image/*"' in page


def test_file_prompt_stores_a_data_uri(app, client):
    url = file_flow(app)
    stored = accepted(app, post(client, url, {}, files=upload("scan.png", b"\x89PNG fake")))
    assert stored["name"] == "scan.png" and stored["type"] == "image/png" and stored["size"] == 9
    assert stored["data"] == "data:image/png;base64," + base64.b64encode(b"\x89PNG fake").decode()


@pytest.mark.parametrize("name,content,message", [
    ("big.pdf", b"x" * 1025, "too large; the limit is 1 KB"),
    ("run.exe", b"MZ", "not an allowed type"),
    ("noext", b"data", "not an allowed type"),
    ("empty.pdf", b"", "is empty"),
])
def test_file_prompt_refuses_bad_uploads(app, client, name, content, message):
    refused(post(client, file_flow(app), {}, files=upload(name, content)), message)


def test_required_file_prompt_needs_a_file(app, client):
    refused(post(client, file_flow(app), {"answer": "just text"}), "Choose a file.")


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-inf", "1e999999", "1e15"])
def test_numbers_that_cannot_be_stored_are_refused(app, client, value):
    url = one_prompt_flow(app, type="number")
    refused(post(client, url, {"answer": value}), "Enter a number between")


def test_nul_bytes_are_refused_before_the_stage(app, client):
    """PostgreSQL cannot store NUL; the app refuses any form value carrying one (a 400 page)."""
    url = make_flow(app, "probe", [{"type": "prompt", "name": "nul", "prompts": [
        {"field_key": "name", "type": "text"}, {"field_key": "bio", "type": "text_area"}]}])
    response = post(client, url, {"name": "Ada\x00 L", "bio": "a\x00b"})
    assert response.status_code == 400 and "Invalid characters" in response.get_data(as_text=True)
    with app.app_context():  # refused before the flow started: no flow session was written
        assert db.session.scalar(select(func.count(FlowSession.id))) == 0


# -- values fixed by the invitation, for every kind of input -----------------------------------

FIXED = {"team": "blue", "agree": True, "colour": "green", "born": "1990-05-17", "seats": 4,
         "locale": "fr", "bio": "Fixed bio", "secret": "from-invitation"}


def test_invitation_values_are_fixed_for_every_input_type(app, client, make_invitation):
    url = make_flow(app, "fixed", [
        {"type": "invitation", "name": "inv"},
        {"type": "prompt", "name": "all-kinds", "prompts": [
            {"field_key": "team", "type": "dropdown", "choices": ["red", "blue"]},
            {"field_key": "agree", "type": "checkbox"},
            {"field_key": "colour", "type": "radio-button-group", "choices": ["green", "pink"]},
            {"field_key": "born", "type": "date"},
            {"field_key": "seats", "type": "number"},
            {"field_key": "locale", "type": "ak-locale"},
            {"field_key": "bio", "type": "text_area"},
            {"field_key": "secret", "type": "hidden"},
            {"field_key": "free", "type": "text"}]}])
    _, link = make_invitation(flow_slug="fixed", attributes=FIXED)
    client.get(link.removeprefix("http://portal.test"))
    page = client.get(url).get_data(as_text=True)
    assert re.search(r'<select[^>]*disabled[^>]*name="team"|<select[^>]*name="team"[^>]*disabled', page)
    assert re.search(r'<textarea[^>]*readonly[^>]*>\s*Fixed bio', page)
    tampered = {"team": "red", "agree": "", "colour": "pink", "born": "2000-01-01", "seats": "9",
                "locale": "de", "bio": "changed", "secret": "changed", "free": "mine"}
    accepted(app, post(client, url, tampered), "free")
    data = latest_session(app).prompt_data
    assert {k: data[k] for k in FIXED} == FIXED
    assert data["free"] == "mine"
