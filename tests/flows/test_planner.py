"""Declarative conditions on bindings: a stage whose condition is false is skipped."""

from __future__ import annotations

import pytest

from portal.flows.planner import ConditionError, describe_condition, validate_condition

from ..conftest import path_of, submit
from ..flowkit import make_flow


def condition_flow(app, condition, *, when="reached", slug="cond"):
    return make_flow(app, slug, [
        {"type": "invitation", "name": "optional-invitation",
         "options": {"continue_flow_without_invitation": True}},
        {"type": "prompt", "name": "about-you", "prompts": [
            {"field_key": "team", "type": "dropdown", "choices": ["red", "blue"]},
            {"field_key": "email", "type": "email"}]},
        {"type": "prompt", "name": "conditional-page", "condition": condition,
         "evaluate_on_plan": when == "plan", "re_evaluate_policies": when == "reached",
         "prompts": [{"field_key": "extra_note", "type": "text"}]},
        {"type": "prompt", "name": "last-page", "prompts": [{"field_key": "final", "type": "text"}]},
    ])


def next_page_after_answers(client, url, answers, link=None):
    client.get(path_of(link) if link else url, follow_redirects=True)
    html = submit(client, url, answers).get_data(as_text=True)
    assert "Please correct" not in html
    if 'name="extra_note"' in html:
        return "shown"
    assert 'name="final"' in html, html
    return "skipped"


ANSWERS = {"team": "red", "email": "ada@example.com"}


@pytest.mark.parametrize("condition,answers,expected", [
    ({"type": "prompt_equals", "field": "team", "value": "red"}, ANSWERS, "shown"),
    ({"type": "prompt_equals", "field": "team", "value": "red"}, {**ANSWERS, "team": "blue"}, "skipped"),
    ({"type": "prompt_equals", "field": "team", "value": "red", "negate": True}, ANSWERS, "skipped"),
    ({"type": "prompt_in", "field": "team", "values": ["green", "red"]}, ANSWERS, "shown"),
    ({"type": "prompt_in", "field": "team", "values": ["green", "red"]},
     {**ANSWERS, "team": "blue"}, "skipped"),
    ({"type": "email_domain_in", "domains": ["Example.com", "@corp.example"]},
     {**ANSWERS, "email": "ada@EXAMPLE.com"}, "shown"),
    ({"type": "email_domain_in", "domains": ["example.com"]},
     {**ANSWERS, "email": "ada@example.com.evil.org"}, "skipped"),
    ({"type": "email_domain_in", "domains": ["example.com"], "negate": True},
     {**ANSWERS, "email": "ada@other.org"}, "shown"),
    ({"type": "invitation_in_effect"}, ANSWERS, "skipped"),
    ({"type": "invitation_in_effect", "negate": True}, ANSWERS, "shown"),
    ({"type": "invitation_has_attribute", "key": "department"}, ANSWERS, "skipped"),
    (None, ANSWERS, "shown"),
])
def test_conditions_without_invitation(app, client, condition, answers, expected):
    url = condition_flow(app, condition)
    assert next_page_after_answers(client, url, answers) == expected


@pytest.mark.parametrize("condition,attributes,expected", [
    ({"type": "invitation_in_effect"}, {}, "shown"),
    ({"type": "invitation_in_effect", "negate": True}, {}, "skipped"),
    ({"type": "invitation_has_attribute", "key": "department"}, {"department": "Eng"}, "shown"),
    ({"type": "invitation_has_attribute", "key": "department"}, {"location": "x"}, "skipped"),
    ({"type": "invitation_has_attribute", "key": "attributes.department"},
     {"attributes": {"department": "Eng"}}, "shown"),
])
def test_conditions_on_the_invitation(app, client, make_invitation, condition, attributes, expected):
    url = condition_flow(app, condition, when="plan")
    _, link = make_invitation(flow_slug="cond", attributes=attributes)
    assert next_page_after_answers(client, url, ANSWERS, link=link) == expected


def test_prompt_condition_checked_only_at_plan_time_sees_no_answers(app, client):
    """Like authentik: without re-evaluation, a condition on a later answer is false at the start."""
    url = condition_flow(app, {"type": "prompt_equals", "field": "team", "value": "red"},
                         when="plan")
    assert next_page_after_answers(client, url, ANSWERS) == "skipped"


def test_invitation_condition_also_checked_when_reached(app, client, make_invitation):
    url = make_flow(app, "both", [
        {"type": "invitation", "name": "optional-invitation",
         "options": {"continue_flow_without_invitation": True}},
        {"type": "prompt", "name": "p1", "prompts": [{"field_key": "team", "type": "text"}]},
        {"type": "prompt", "name": "p2", "re_evaluate_policies": True,
         "condition": {"type": "invitation_in_effect"},
         "prompts": [{"field_key": "extra_note", "type": "text"}]},
        {"type": "prompt", "name": "p3", "prompts": [{"field_key": "final", "type": "text"}]},
    ])
    invitation_id, link = make_invitation(flow_slug="both")
    client.get(path_of(link), follow_redirects=True)  # the invitee sees the first page
    with app.app_context():  # withdrawn while the invitee is on the first page
        from portal.extensions import db
        from portal.models import Invitation, utcnow

        db.session.get(Invitation, invitation_id).revoked_at = utcnow()
        db.session.commit()
    assert 'name="final"' in submit(client, url, {"team": "x"}).get_data(as_text=True)


def test_a_broken_stored_condition_is_a_clear_page_not_a_500(app, client):
    url = condition_flow(app, {"type": "python", "code": "import os"}, when="plan")
    response = client.get(url)
    assert response.status_code == 503
    assert "misconfigured" in response.get_data(as_text=True)
    url = condition_flow(app, {"type": "python"}, when="reached", slug="cond2")
    client.get(url)
    response = submit(client, url, ANSWERS)
    assert response.status_code == 503 and "misconfigured" in response.get_data(as_text=True)


@pytest.mark.parametrize("condition,message", [
    ({"type": "expression", "expression": "return True"}, "unknown condition type"),
    ({"type": "prompt_equals", "value": "x"}, "field is required"),
    ({"type": "prompt_in", "field": "team", "values": "red"}, "values must be a list"),
    ({"type": "email_domain_in", "domains": [{"a": 1}]}, "domains must be a list"),
    ({"type": "invitation_has_attribute"}, "key is required"),
    (["not", "an", "object"], "must be an object"),
])
def test_invalid_conditions_are_named(condition, message):
    with pytest.raises(ConditionError, match=message):
        validate_condition(condition)


def test_conditions_read_as_words():
    assert describe_condition(None) == "Always"
    assert describe_condition({"type": "prompt_in", "field": "team", "values": ["a", "b"]}) == (
        "Only if “team” is one of a, b")
    assert describe_condition({"type": "invitation_in_effect", "negate": True}) == (
        "Unless an invitation is in effect")
    assert describe_condition({"type": "bogus"}).startswith("Invalid condition")


@pytest.mark.parametrize("path", ["/if/flow/%00/", "/if/flow/%00/verify-email?token=%00",
                                  "/if/flow/x/verify-email?token=a%00b"])
def test_nul_in_addresses_is_not_a_500(client, path):
    assert client.get(path).status_code in (404, 410)
