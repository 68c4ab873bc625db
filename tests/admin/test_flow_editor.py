"""The flow editor through its HTML forms, CSRF on: flows, bindings, stages, prompts."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import Flow, FlowStageBinding, Group, Invitation, Prompt, Stage

from ..conftest import csrf_from, submit


@pytest.fixture
def editor(client, auth, admin):
    auth.login()
    return client


def _ids(app, model, **filters):
    with app.app_context():
        return db.session.scalar(select(model.id).filter_by(**filters))


def test_every_editor_page_renders(app, editor):
    flow_id = _ids(app, Flow, slug="default-enrollment-flow")
    pages = ["/admin/flows/", "/admin/flows/new", f"/admin/flows/{flow_id}",
             f"/admin/flows/{flow_id}/edit", f"/admin/flows/{flow_id}/bindings/new",
             "/admin/stages/", "/admin/stages/new", "/admin/prompts/", "/admin/prompts/new"]
    from portal.flows.stages import STAGE_TYPES

    pages += [f"/admin/stages/new/{kind}" for kind in STAGE_TYPES]
    with app.app_context():
        pages += [f"/admin/stages/{s.id}/edit" for s in db.session.scalars(select(Stage))]
        pages += [f"/admin/prompts/{p.id}/edit" for p in db.session.scalars(select(Prompt))]
        pages += [f"/admin/flows/{b.flow_id}/bindings/{b.id}/edit"
                  for b in db.session.scalars(select(FlowStageBinding))]
    for page in pages:
        response = editor.get(page)
        assert response.status_code == 200, page
        assert 'href="/t/default/admin/flows/"' in response.get_data(as_text=True)


def test_editor_needs_a_superuser(app, client, auth, admin):
    assert client.get("/admin/flows/").status_code == 302
    with app.app_context():
        from portal.auth.service import create_user

        create_user(username="plain", email="p@example.com", password="a-long-and-unusual-passphrase")
    auth.login("plain")
    for page in ("/admin/flows/", "/admin/stages/", "/admin/prompts/", "/admin/flows/new"):
        assert client.get(page).status_code == 403


def test_create_edit_and_list_a_flow(app, editor):
    bad = submit(editor, "/admin/flows/new", {
        "name": "Partners", "slug": "Bad Slug!", "title": "Hi", "designation": "enrollment",
        "authentication": "require_unauthenticated"}).get_data(as_text=True)
    assert "Use lower-case letters" in bad and 'value="Partners"' in bad
    taken = submit(editor, "/admin/flows/new", {
        "name": "Again", "slug": "default-enrollment-flow", "designation": "enrollment",
        "authentication": "none"}).get_data(as_text=True)
    assert "Another flow has this slug." in taken
    created = submit(editor, "/admin/flows/new", {
        "name": "Partners", "slug": "partners", "title": "Welcome, partner",
        "designation": "enrollment", "authentication": "require_unauthenticated"})
    assert "Flow “Partners” created" in created.get_data(as_text=True)
    flow_id = _ids(app, Flow, slug="partners")
    submit(editor, f"/admin/flows/{flow_id}/edit", {
        "name": "Partners EU", "slug": "partners", "title": "Welcome", "designation": "enrollment",
        "authentication": "none"})
    with app.app_context():
        flow = db.session.get(Flow, flow_id)
        assert (flow.name, flow.title, flow.authentication) == ("Partners EU", "Welcome", "none")
    listing = editor.get("/admin/flows/").get_data(as_text=True)
    assert "Partners EU" in listing and "default-enrollment-flow" in listing
    bogus = submit(editor, f"/admin/flows/{flow_id}/edit", {
        "name": "x", "slug": "partners", "designation": "not-a-designation", "authentication": "none"})
    assert bogus.status_code == 200 and "Not a valid choice" in bogus.get_data(as_text=True)


def _binding_rows(html: str) -> list[str]:
    return re.findall(r'<tr id="binding-\d+">\s*<td>-?\d+</td>\s*<td><a [^>]*>([^<]+)</a>', html)


def test_flow_page_lists_bindings_in_order_and_reorders_them(app, editor):
    flow_id = _ids(app, Flow, slug="default-enrollment-flow")
    url = f"/admin/flows/{flow_id}"
    before = _binding_rows(editor.get(url).get_data(as_text=True))
    assert before == ["default-enrollment-invitation", "default-enrollment-prompt-first",
                      "default-enrollment-prompt-second", "default-enrollment-user-write",
                      "default-enrollment-user-login"]
    second = _ids(app, FlowStageBinding, flow_id=flow_id, order=11)
    page = submit(editor, f"{url}/bindings/{second}/move/up", {}, page_url=url)
    after = _binding_rows(page.get_data(as_text=True))
    assert after[1:3] == ["default-enrollment-prompt-second", "default-enrollment-prompt-first"]
    page = submit(editor, f"{url}/bindings/{second}/move/down", {}, page_url=url)
    assert _binding_rows(page.get_data(as_text=True)) == before
    # The first cannot move up; nothing changes.
    first = _ids(app, FlowStageBinding, flow_id=flow_id, order=5)
    page = submit(editor, f"{url}/bindings/{first}/move/up", {}, page_url=url)
    assert _binding_rows(page.get_data(as_text=True)) == before
    # State changes need POST and a CSRF token.
    assert editor.get(f"{url}/bindings/{second}/move/up").status_code == 405
    assert editor.post(f"{url}/bindings/{second}/move/up", follow_redirects=True).status_code == 400
    assert editor.post(f"{url}/bindings/{second}/delete").status_code == 400


def test_equal_orders_are_renumbered_when_moving(app, editor):
    flow_id = _ids(app, Flow, slug="default-enrollment-flow")
    with app.app_context():
        for binding in db.session.scalars(select(FlowStageBinding).filter_by(flow_id=flow_id)):
            binding.order = 0
        db.session.commit()
    url = f"/admin/flows/{flow_id}"
    names = _binding_rows(editor.get(url).get_data(as_text=True))
    last = _ids(app, FlowStageBinding, flow_id=flow_id,
                stage_id=_ids(app, Stage, name=names[-1]))
    page = submit(editor, f"{url}/bindings/{last}/move/up", {}, page_url=url)
    assert _binding_rows(page.get_data(as_text=True)) == [*names[:-2], names[-1], names[-2]]
    with app.app_context():
        orders = db.session.scalars(select(FlowStageBinding.order)
                                    .filter_by(flow_id=flow_id)).all()
        assert len(set(orders)) == len(orders) == 5


def test_add_a_binding_with_a_condition_then_remove_it(app, editor):
    flow_id = _ids(app, Flow, slug="default-enrollment-flow")
    url = f"/admin/flows/{flow_id}/bindings/new"
    created = submit(editor, "/admin/stages/new/deny", {"name": "no-outsiders",
                                                        "deny_message": "Staff only."})
    assert "Stage “no-outsiders” created" in created.get_data(as_text=True)
    stage_id = _ids(app, Stage, name="no-outsiders")
    form = {"stage": stage_id, "order": "15", "condition_type": "email_domain_in",
            "field": "email", "values": "", "negate": "y", "re_evaluate_policies": "y"}
    page = submit(editor, url, form).get_data(as_text=True)
    assert "Enter at least one line." in page
    page = submit(editor, url, {**form, "values": "example.com\ncorp.example",
                                "evaluate_on_plan": "y"}).get_data(as_text=True)
    assert "answers are not known when the flow starts" in page
    page = submit(editor, url, {**form, "values": "example.com\n corp.example "}).get_data(as_text=True)
    assert "Stage added to the flow." in page
    assert "Unless the domain of “email” is one of example.com, corp.example" in page
    with app.app_context():
        binding = db.session.scalar(select(FlowStageBinding).filter_by(stage_id=stage_id))
        assert binding.condition == {"type": "email_domain_in", "field": "email",
                                     "domains": ["example.com", "corp.example"], "negate": True}
        assert (binding.order, binding.evaluate_on_plan, binding.re_evaluate_policies) == (15, False, True)
        binding_id = binding.id
    # Edit it to "always"; the form shows the stored condition first.
    edit = f"/admin/flows/{flow_id}/bindings/{binding_id}/edit"
    shown = editor.get(edit).get_data(as_text=True)
    assert "corp.example" in shown and 'selected value="email_domain_in"' in shown
    submit(editor, edit, {"stage": stage_id, "order": "16", "condition_type": ""})
    with app.app_context():
        binding = db.session.get(FlowStageBinding, binding_id)
        assert binding.condition is None and binding.order == 16
    page = submit(editor, f"/admin/flows/{flow_id}/bindings/{binding_id}/delete", {},
                  page_url=f"/admin/flows/{flow_id}")
    assert "removed from the flow" in page.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(FlowStageBinding, binding_id) is None
        assert db.session.get(Stage, stage_id) is not None


@pytest.mark.parametrize("form,message", [
    ({"condition_type": "prompt_equals", "field": ""}, "field is required"),
    ({"condition_type": "invitation_has_attribute", "key": ""}, "key is required"),
    ({"condition_type": "python"}, "Not a valid choice"),
    ({"order": "first"}, "Enter a whole number."),
    ({"order": "99999999999"}, "Enter a whole number."),
    ({"stage": "999999"}, "Not a valid choice"),
    ({"stage": "abc"}, "Invalid Choice"),
])
def test_bad_binding_forms_show_errors(app, editor, form, message):
    flow_id = _ids(app, Flow, slug="default-enrollment-flow")
    stage_id = _ids(app, Stage, name="default-enrollment-user-login")
    data = {"stage": stage_id, "order": "50", "condition_type": "", **form}
    response = submit(editor, f"/admin/flows/{flow_id}/bindings/new", data)
    assert response.status_code == 200 and message in response.get_data(as_text=True)


def test_bindings_of_another_flow_are_not_found(app, editor):
    binding_id = _ids(app, FlowStageBinding, order=5)
    assert editor.get(f"/admin/flows/999/bindings/{binding_id}/edit").status_code == 404
    assert editor.get("/admin/flows/999").status_code == 404


def test_deleting_a_stage_in_use_asks_and_lists_the_flows(app, editor):
    stage_id = _ids(app, Stage, name="default-enrollment-user-login")
    page = editor.get(f"/admin/stages/{stage_id}/delete").get_data(as_text=True)
    assert "It is in use by:" in page and "flow “default-enrollment-flow” (order 100)" in page
    assert _ids(app, Stage, name="default-enrollment-user-login")  # asking deleted nothing
    submit(editor, f"/admin/stages/{stage_id}/delete", {})
    with app.app_context():
        assert db.session.get(Stage, stage_id) is None
        assert db.session.scalar(select(FlowStageBinding).filter_by(stage_id=stage_id)) is None


def test_deleting_a_prompt_in_use_lists_its_stages(app, editor):
    prompt_id = _ids(app, Prompt, name="default-enrollment-field-email")
    page = editor.get(f"/admin/prompts/{prompt_id}/delete").get_data(as_text=True)
    assert "prompt stage “default-enrollment-prompt-second”" in page
    submit(editor, f"/admin/prompts/{prompt_id}/delete", {})
    with app.app_context():
        assert db.session.get(Prompt, prompt_id) is None
        stage = db.session.scalar(select(Stage).filter_by(name="default-enrollment-prompt-second"))
        assert [p.field_key for p in stage.prompts] == ["name"]


def test_deleting_a_flow_lists_its_invitations(app, editor, make_invitation):
    make_invitation(name="for-bob")
    flow_id = _ids(app, Flow, slug="default-enrollment-flow")
    page = editor.get(f"/admin/flows/{flow_id}/delete").get_data(as_text=True)
    assert "invitation “for-bob”" in page and "every invitation for it" in page
    submit(editor, f"/admin/flows/{flow_id}/delete", {})
    with app.app_context():
        assert db.session.get(Flow, flow_id) is None
        assert db.session.scalar(select(Invitation)) is None
        assert db.session.scalar(select(Stage).filter_by(name="default-enrollment-user-login"))


def test_unused_things_delete_after_the_same_question(app, editor):
    submit(editor, "/admin/prompts/new", {"name": "lonely", "field_key": "lonely", "type": "text",
                                          "order": "0"})
    prompt_id = _ids(app, Prompt, name="lonely")
    page = editor.get(f"/admin/prompts/{prompt_id}/delete").get_data(as_text=True)
    assert "Delete prompt “lonely”?" in page and "It is in use by" not in page
    assert editor.post(f"/admin/prompts/{prompt_id}/delete").status_code == 400  # no CSRF token
    submit(editor, f"/admin/prompts/{prompt_id}/delete", {})
    assert _ids(app, Prompt, name="lonely") is None


def test_user_write_stage_form_keeps_authentik_option_names(app, editor):
    with app.app_context():
        group = Group(name="engineering-team", attributes={})
        db.session.add(group)
        db.session.commit()
        group_id = group.id
    stage_id = _ids(app, Stage, name="default-enrollment-user-write")
    bad = submit(editor, f"/admin/stages/{stage_id}/edit", {
        "name": "default-enrollment-user-write", "user_type": "robot",
        "user_path_template": "../etc", "create_users_group": ""}).get_data(as_text=True)
    assert "Not a valid choice" in bad and "Use a path such as users/internal." in bad
    submit(editor, f"/admin/stages/{stage_id}/edit", {
        "name": "default-enrollment-user-write", "create_users_as_inactive": "y",
        "create_users_group": str(group_id), "user_type": "external",
        "user_path_template": "users/external"})
    with app.app_context():
        assert db.session.get(Stage, stage_id).options == {
            "user_creation_mode": "always_create", "create_users_as_inactive": True,
            "create_users_group": group_id, "user_type": "external",
            "user_path_template": "users/external"}
    page = editor.get(f"/admin/stages/{stage_id}/edit").get_data(as_text=True)
    assert f'selected value="{group_id}"' in page
    assert "flow “default-enrollment-flow”" in page  # where it is used


def test_email_consent_and_deny_stage_forms(app, editor):
    bad = submit(editor, "/admin/stages/new/email", {
        "name": "verify", "subject": "Confirm", "template": "email/account_confirmation.html",
        "token_expiry": "soon", "from_address": "nope"}).get_data(as_text=True)
    assert "is not a duration" in bad and "Enter a valid email address" in bad
    submit(editor, "/admin/stages/new/email", {
        "name": "verify", "subject": "Confirm", "template": "email/account_confirmation.html",
        "token_expiry": "hours=2", "activate_user_on_success": "y", "use_global_settings": "y"})
    bad = submit(editor, "/admin/stages/new/consent", {
        "name": "terms", "consent_text": "Be kind.", "mode": "expiring",
        "consent_expire_in": "a fortnight"}).get_data(as_text=True)
    assert "is not a duration such as weeks=4" in bad
    submit(editor, "/admin/stages/new/consent", {
        "name": "terms", "consent_title": "Rules", "consent_text": "Be kind.",
        "consent_version": "v3", "checkbox_label": "I agree", "mode": "expiring",
        "consent_expire_in": "days=3"})
    submit(editor, "/admin/stages/new/deny", {"name": "nope", "deny_message": "Closed."})
    empty = submit(editor, "/admin/stages/new/consent", {"name": "t2", "consent_text": ""})
    assert "This field is required." in empty.get_data(as_text=True)
    with app.app_context():
        options = {s.name: s.options for s in db.session.scalars(select(Stage))}
    assert options["verify"] == {"subject": "Confirm", "template": "email/account_confirmation.html",
                                 "token_expiry": "hours=2", "activate_user_on_success": True,
                                 "use_global_settings": True, "from_address": ""}
    assert options["terms"] == {"consent_title": "Rules", "consent_text": "Be kind.",
                                "consent_version": "v3", "checkbox_label": "I agree",
                                "mode": "expiring", "consent_expire_in": "days=3"}
    assert options["nope"] == {"deny_message": "Closed."}
    assert editor.get("/admin/stages/new/no-such-type").status_code == 404


def test_editing_a_stage_keeps_options_the_form_does_not_show(app, editor):
    with app.app_context():
        stage = Stage(name="imported", type="email", options={"token_expiry": 30, "timeout": 10})
        db.session.add(stage)
        db.session.commit()
        stage_id = stage.id
    page = editor.get(f"/admin/stages/{stage_id}/edit").get_data(as_text=True)
    assert 'value="minutes=30"' in page
    submit(editor, f"/admin/stages/{stage_id}/edit", {
        "name": "imported", "subject": "Hi", "template": "email/account_confirmation.html",
        "token_expiry": "minutes=30"})
    with app.app_context():
        assert db.session.get(Stage, stage_id).options["timeout"] == 10


def test_prompt_stage_form_chooses_its_fields(app, editor):
    ids = [_ids(app, Prompt, name=n) for n in ("default-enrollment-field-name",
                                               "default-enrollment-field-username")]
    from werkzeug.datastructures import MultiDict

    page = editor.get("/admin/stages/new/prompt").get_data(as_text=True)

    editor.post("/admin/stages/new/prompt", data=MultiDict(
        [("csrf_token", csrf_from(page)), ("name", "who-are-you"), *(("fields", str(i)) for i in ids)]))
    with app.app_context():
        stage = db.session.scalar(select(Stage).filter_by(name="who-are-you"))
        assert stage.type == "prompt" and sorted(p.id for p in stage.prompts) == sorted(ids)


def test_prompt_form_for_choices_and_files(app, editor):
    base = {"name": "colour", "field_key": "colour", "label": "Colour", "type": "dropdown",
            "order": "3", "required": "y"}
    page = submit(editor, "/admin/prompts/new", base).get_data(as_text=True)
    assert "Enter at least one choice." in page
    page = submit(editor, "/admin/prompts/new", {**base, "choices": "red\nred"}).get_data(as_text=True)
    assert "must be different" in page
    submit(editor, "/admin/prompts/new", {**base, "choices": "red\nblue | Ocean blue",
                                          "help_text": "Pick one", "placeholder": "—"})
    submit(editor, "/admin/prompts/new", {"name": "cv", "field_key": "attributes.cv", "type": "file",
                                          "order": "0", "max_size_kb": "200",
                                          "allowed_types": ".pdf, image/*"})
    bad = submit(editor, "/admin/prompts/new", {"name": "x", "field_key": "1bad key", "type": "file",
                                                "order": "0", "max_size_kb": "999999",
                                                "allowed_types": "exe"}).get_data(as_text=True)
    assert "Start with a letter" in bad and "Between 1 and" in bad and "neither an extension" in bad
    with app.app_context():
        colour = db.session.scalar(select(Prompt).filter_by(name="colour"))
        assert colour.choices == ["red", {"value": "blue", "label": "Ocean blue"}]
        assert (colour.order, colour.help_text, colour.required) == (3, "Pick one", True)
        cv = db.session.scalar(select(Prompt).filter_by(name="cv"))
        assert cv.options == {"max_size": 200 * 1024, "allowed_types": [".pdf", "image/*"]}
        colour_id = colour.id
    edit = editor.get(f"/admin/prompts/{colour_id}/edit").get_data(as_text=True)
    assert "blue | Ocean blue" in edit


def test_garbage_posts_never_500(app, editor):
    flow_id = _ids(app, Flow, slug="default-enrollment-flow")
    stage_id = _ids(app, Stage, name="default-enrollment-user-write")
    prompt_id = _ids(app, Prompt, name="default-enrollment-field-email")
    garbage = {"name": "x" * 5000, "slug": "\x00", "order": "1e9", "type": "🙂", "stage": "-1",
               "condition_type": "prompt_in", "values": "\x00", "token_expiry": "P1Y",
               "create_users_group": "abc", "max_size_kb": "-5", "fields": "zz"}
    for url in ("/admin/flows/new", f"/admin/flows/{flow_id}/edit",
                f"/admin/flows/{flow_id}/bindings/new", f"/admin/stages/{stage_id}/edit",
                "/admin/stages/new/email", "/admin/stages/new/prompt", "/admin/prompts/new",
                f"/admin/prompts/{prompt_id}/edit"):
        response = submit(editor, url, garbage)
        assert response.status_code in (200, 400), url
        assert "Something went wrong" not in response.get_data(as_text=True), url


def test_a_prompt_posted_without_its_optional_texts_is_stored_with_empty_ones(app, editor):
    """A hand-made POST with only the required fields: the optional texts are empty, not NULL."""
    page = editor.get("/admin/prompts/new").get_data(as_text=True)
    response = editor.post("/admin/prompts/new", data={
        "csrf_token": csrf_from(page), "name": "bare", "field_key": "bare", "label": "Bare",
        "type": "text", "order": "0"})
    assert response.status_code == 302
    with app.app_context():
        bare = db.session.scalar(select(Prompt).filter_by(name="bare"))
        assert (bare.placeholder, bare.initial_value, bare.help_text) == ("", "", "")
