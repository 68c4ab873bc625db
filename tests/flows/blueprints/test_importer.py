"""Blueprint import and export through the real importer, against a real database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml
from sqlalchemy import select

from portal.extensions import db
from portal.flows.blueprints import BlueprintLoader, export_flow, flow_by_slug, import_blueprint
from portal.invitations import service
from portal.models import Flow, FlowStageBinding, Group, Invitation, Prompt, Stage

from ...blueprint_helpers import (
    OPERATOR,
    blueprint_files,
    blueprint_text,
    empty_database,
    flow_snapshot,
    needs_blueprints,
    row_counts,
)

# What each of authentik's examples cannot bring over, entry by entry, and why.
EXPECTED_SKIPS = {
    "flows-enrollment-2-stage.yaml": {},
    "flows-enrollment-2-stage-prompt_type.yaml": {},
    "flows-enrollment-email-verification.yaml": {},
    "flows-invitation-enrollment.yaml": {},
    "flows-recovery-email-verification.yaml": {
        4: "expression policies run Python code",
        15: "policy bindings attach authentik policies",
        16: "policy bindings attach authentik policies",
    },
    "flows-unenrollment.yaml": {},
}


def _import(text: str, **kwargs):
    report = import_blueprint(text, actor=OPERATOR, **kwargs)
    assert report.ok, report.errors
    return report


@needs_blueprints
@pytest.mark.parametrize("name", blueprint_files())
def test_every_authentik_example_imports_or_says_what_it_skips(app, name):
    text = blueprint_text(name)
    entries = yaml.load(text, Loader=BlueprintLoader)["entries"]  # noqa: S506 (a SafeLoader)
    with app.app_context():
        empty_database()
        report = _import(text)
        assert report.applied
        assert sorted(c.entry for c in report.changes) == list(range(1, len(entries) + 1))
        skipped = {c.entry: " ".join(c.details) for c in report.of("skip")}
        expected = EXPECTED_SKIPS.get(name)
        if expected is None:  # a file added later: every skip must still say why
            assert all(skipped.values())
        else:
            assert set(skipped) == set(expected)
            for number, reason in expected.items():
                assert reason in skipped[number]
        assert len(report.of("create")) == len(entries) - len(skipped)


@needs_blueprints
def test_invitation_example_creates_its_flows_group_and_invitations(app):
    with app.app_context():
        empty_database()
        assert _import(blueprint_text("flows-invitation-enrollment.yaml")).warnings == []
        slugs = set(db.session.scalars(select(Flow.slug)))
        assert slugs == {"invitation-enrollment-flow-external", "invitation-enrollment-flow-internal",
                         "invitation-enrollment-flow-internal-engineering"}
        assert db.session.scalars(select(Group.name)).all() == ["engineering-team"]
        invitations = {i.name: i for i in db.session.scalars(select(Invitation))}
        assert set(invitations) == {
            "example-external-basic-invitation", "example-external-prefilled-email-invitation",
            "example-internal-prefilled-invitation", "example-internal-department-invitation",
            "example-engineering-team-invitation",
        }
        engineering = invitations["example-engineering-team-invitation"]
        assert engineering.flow.slug == "invitation-enrollment-flow-internal-engineering"
        assert engineering.attributes == {"attributes": {"department": "Engineering"}}
        assert engineering.expires_at == datetime(2028, 12, 31, 23, 59, 59, tzinfo=UTC)
        assert not engineering.single_use
        assert invitations["example-external-prefilled-email-invitation"].single_use
        assert invitations["example-external-basic-invitation"].expires_at is None
        # Each has its own working token, stored only as a digest.
        assert len({i.token_digest for i in invitations.values()}) == 5
        for invitation in invitations.values():
            assert service.find_by_token(service.invitation_token(invitation)) == invitation

        stage = db.session.scalar(select(Stage).filter_by(
            name="invitation-enrollment-user-write-internal-engineering"))
        group = db.session.scalar(select(Group).filter_by(name="engineering-team"))
        assert stage.type == "user_write"
        assert stage.options == {"user_creation_mode": "always_create", "user_type": "internal",
                                 "user_path_template": "users/internal/engineering",
                                 "create_users_group": group.id}
        credentials = db.session.scalar(select(Stage).filter_by(
            name="invitation-enrollment-prompt-credentials"))
        assert [p.field_key for p in credentials.prompts] == ["username", "password", "password_repeat"]
        flow = flow_by_slug("invitation-enrollment-flow-external")
        assert [(b.order, b.stage.type) for b in flow.bindings] == [
            (5, "invitation"), (10, "prompt"), (15, "prompt"), (20, "user_write"), (100, "user_login")]
        assert flow.bindings[0].re_evaluate_policies and not flow.bindings[1].re_evaluate_policies


@needs_blueprints
def test_both_prompt_type_spellings_give_the_same_prompts(app):
    with app.app_context():
        empty_database()
        _import(blueprint_text("flows-enrollment-2-stage-prompt_type.yaml"))
        first = flow_snapshot("default-enrollment-flow")
        second = _import(blueprint_text("flows-enrollment-2-stage.yaml"))
        assert second.counts()["unchanged"] == 14 and flow_snapshot("default-enrollment-flow") == first
        assert second.warnings == ["Flow 'default-enrollment-flow' has no invitation stage: anyone who "
                                   "knows its address can sign up. Add an invitation stage to admit "
                                   "invitees only."]
        types = dict(db.session.execute(select(Prompt.field_key, Prompt.type)).all())
        assert types == {"username": "username", "password": "password", "password_repeat": "password",
                         "name": "text", "email": "email"}


@needs_blueprints
def test_reimport_updates_in_place_without_duplicates(app):
    text = blueprint_text("flows-invitation-enrollment.yaml")
    with app.app_context():
        _import(text)
        counts = row_counts()
        digests = set(db.session.scalars(select(Invitation.token_digest)))
        again = _import(text)
        assert again.counts() == {"create": 0, "update": 0, "delete": 0, "unchanged": 38, "skip": 0}
        assert row_counts() == counts
        assert set(db.session.scalars(select(Invitation.token_digest))) == digests  # links keep working

        flow_id = flow_by_slug("invitation-enrollment-flow-external").id
        changed = text.replace("title: Welcome! Complete your enrollment",
                               "title: Hello partner", 1).replace("label: Username", "label: Login name")
        report = _import(changed)
        updates = {c.label: c.details for c in report.of("update")}
        assert updates == {"flow 'invitation-enrollment-flow-external'": ["title"],
                           "prompt 'invitation-enrollment-field-username'": ["label"]}
        assert row_counts() == counts
        flow = flow_by_slug("invitation-enrollment-flow-external")
        assert (flow.id, flow.title) == (flow_id, "Hello partner")


@needs_blueprints
def test_importing_over_the_seeded_default_flow_reuses_it(app):
    with app.app_context():
        counts = row_counts()
        report = _import(blueprint_text("flows-enrollment-2-stage.yaml"))
        assert report.counts()["create"] == 0
        assert row_counts() == counts


@needs_blueprints
def test_preview_lists_changes_and_writes_nothing(app):
    text = blueprint_text("flows-recovery-email-verification.yaml")
    with app.app_context():
        empty_database()  # the seeded recovery flow has these names: a fresh database instead
        counts = row_counts()
        preview = _import(text, dry_run=True)
        assert not preview.applied and row_counts() == counts
        assert preview.name == "Example - Recovery with email verification"
        created = [c.label for c in preview.of("create")]
        assert "flow 'default-recovery-flow'" in created and "email stage 'default-recovery-email'" in created
        email = next(c for c in preview.changes if c.label == "email stage 'default-recovery-email'")
        # authentik's own SMTP settings are irrelevant under use_global_settings: true (said
        # so); its recovery attempt limits are not acted on (said so too).
        assert email.notes == [
            "host, port, timeout, use_ssl, use_tls, username: not acted on, and not needed: "
            "authentik's per-stage SMTP server, which use_global_settings: true turns off there "
            "too; the portal's mail server (MAIL_SERVER) sends",
            "recovery_cache_timeout, recovery_max_attempts: not used by the portal's email "
            "verification stage (no option of it reads this); ignored"]
        policy = next(c for c in preview.changes
                      if c.model == "authentik_policies_expression.expressionpolicy")
        assert (policy.action, policy.label) == ("skip", "name=default-recovery-skip-if-restored")
        assert policy.details == ["expression policies run Python code, which the portal never "
                                  "executes; express the rule as a declarative condition on the "
                                  "binding instead"]
        write = next(c for c in preview.changes
                     if c.label == "user_write stage 'default-recovery-user-write'")
        assert write.notes == []  # never_create is acted on now: nothing to report
        assert preview.summary() == "13 to create, 0 to update, 0 to delete, 0 unchanged, 3 skipped"
        assert preview.warnings == []  # a recovery flow, not an enrollment flow

        applied = _import(text)
        assert applied.summary() == "13 created, 0 updated, 0 deleted, 0 unchanged, 3 skipped"
        assert [(c.entry, c.action) for c in applied.changes] == [
            (c.entry, c.action) for c in preview.changes]
        assert row_counts()["flows"] == counts["flows"] + 1


def test_states_created_and_absent(app):
    create = """
version: 1
entries:
  - model: authentik_core.group
    identifiers: {name: staff}
    attrs: {attributes: {level: 1}}
"""
    with app.app_context():
        _import(create)
        kept = _import(create.replace("level: 1", "level: 2").replace(
            "identifiers", "state: created\n    identifiers"))
        assert kept.changes[0].action == "unchanged" and "state: created" in kept.changes[0].details[0]
        assert db.session.scalar(select(Group)).attributes == {"level": 1}

        absent = create.replace("identifiers", "state: absent\n    identifiers")
        preview = _import(absent, dry_run=True)
        assert [c.label for c in preview.of("delete")] == ["group 'staff'"]
        assert db.session.scalar(select(Group)) is not None
        _import(absent)
        assert db.session.scalar(select(Group)) is None
        assert _import(absent).changes[0].details == ["already absent"]


# -- malformed files: a clear message, nothing written ---------------------------------------


def _refused(app, text: str) -> list[str]:
    with app.app_context():
        counts = row_counts()
        report = import_blueprint(text, actor=OPERATOR)
        assert not report.ok and not report.applied
        assert row_counts() == counts
        return report.errors


def test_bad_yaml_syntax_names_the_line(app):
    errors = _refused(app, "version: 1\nentries:\n  - model: authentik_core.group\n    attrs: [unclosed\n")
    assert len(errors) == 1 and errors[0].startswith("Line 5, column 1:")
    assert "not valid YAML" in errors[0]


def test_not_a_blueprint(app):
    assert _refused(app, "- just\n- a list\n") == [
        "The file is not a blueprint: expected keys version, metadata, entries."]
    assert _refused(app, "version: 2\nentries: []\n") == ["version: expected 1, found 2."]
    assert _refused(app, "version: 1\n") == ["entries: missing, or not a list."]


def test_unknown_keyof_names_entry_model_and_field(app):
    errors = _refused(app, """
version: 1
entries:
  - model: authentik_flows.flow
    id: flow
    identifiers: {slug: broken}
    attrs: {name: Broken, designation: enrollment}
  - model: authentik_flows.flowstagebinding
    identifiers:
      target: !KeyOf flow
      stage: !KeyOf nope
      order: 10
""")
    assert errors == ["entry 2 (authentik_flows.flowstagebinding): stage: !KeyOf 'nope' refers to no "
                      "entry id."]


def test_missing_required_attributes(app):
    errors = _refused(app, """
version: 1
entries:
  - model: authentik_flows.flow
    identifiers: {slug: no-name}
    attrs: {title: Untitled}
  - model: authentik_stages_prompt.prompt
    identifiers: {name: no-key}
    attrs: {type: text}
  - model: authentik_stages_invitation.invitation
    identifiers: {name: nowhere}
    attrs: {single_use: true}
  - identifiers: {name: modelless}
  - model: authentik_core.group
""")
    assert errors == [
        "entry 4 (?): model: missing required attribute.",
        "entry 5 (authentik_core.group): identifiers: missing required attribute.",
    ]
    errors = _refused(app, """
version: 1
entries:
  - model: authentik_flows.flow
    identifiers: {slug: no-name}
    attrs: {title: Untitled}
  - model: authentik_stages_prompt.prompt
    identifiers: {name: no-key}
    attrs: {type: text}
  - model: authentik_stages_invitation.invitation
    identifiers: {name: nowhere}
    attrs: {single_use: true}
""")
    assert errors == [
        "entry 1 (authentik_flows.flow): name: missing required attribute (needed to create it).",
        "entry 2 (authentik_stages_prompt.prompt): field_key: missing required attribute "
        "(needed to create it).",
        "entry 3 (authentik_stages_invitation.invitation): flow: missing required attribute "
        "(an invitation works on one flow).",
    ]


def test_keyof_cycle_is_refused(app):
    errors = _refused(app, """
version: 1
entries:
  - model: authentik_stages_user_write.userwritestage
    id: writer
    identifiers: {name: writer}
    attrs: {create_users_group: !KeyOf team}
  - model: authentik_core.group
    id: team
    identifiers: {name: team}
    attrs: {attributes: {written_by: !KeyOf writer}}
""")
    assert errors == ["entry 1 (authentik_stages_user_write.userwritestage): !KeyOf references form a "
                      "cycle: writer (entry 1) → team (entry 2) → writer (entry 1)."]


def test_one_bad_entry_means_nothing_is_written(app):
    errors = _refused(app, """
version: 1
entries:
  - model: authentik_flows.flow
    identifiers: {slug: fine}
    attrs: {name: Fine, designation: enrollment}
  - model: authentik_flows.flow
    identifiers: {slug: wrong}
    attrs: {name: Wrong, designation: nonsense}
""")
    assert errors == ["entry 2 (authentik_flows.flow): designation: 'nonsense' is not one of enrollment, "
                      "authentication, recovery, unenrollment, invalidation, authorization, "
                      "stage_configuration."]
    with app.app_context():
        assert flow_by_slug("fine") is None


def test_bad_values_name_their_field(app):
    errors = _refused(app, """
version: 1
entries:
  - model: authentik_stages_prompt.prompt
    identifiers: {name: p}
    attrs: {field_key: k, type: telepathy}
  - model: authentik_stages_invitation.invitationstage
    id: inv
    identifiers: {name: clash}
  - model: authentik_stages_prompt.promptstage
    identifiers: {name: clash}
  - model: authentik_flows.flow
    identifiers: {slug: f}
    attrs: {name: F, title: [not, text]}
  - model: authentik_stages_invitation.invitation
    identifiers: {name: i}
    attrs: {flow: !Find [authentik_flows.flow, [slug, default-enrollment-flow]], expires: tomorrow}
""")
    assert errors == [
        "entry 1 (authentik_stages_prompt.prompt): type: unknown prompt type 'telepathy'.",
        "entry 3 (authentik_stages_prompt.promptstage): identifiers.name: 'clash' is already the name "
        "of a stage of type invitation.",
        "entry 4 (authentik_flows.flow): title: expected text, found list.",
        "entry 5 (authentik_stages_invitation.invitation): expires: 'tomorrow' is not a date and time "
        "such as 2028-12-31T23:59:59Z.",
    ]


def test_unknown_models_and_tags_are_skipped_with_the_reason(app):
    with app.app_context():
        report = _import("""
version: 1
entries:
  - model: authentik_flows.flow
    id: flow
    identifiers: {slug: tagged}
    attrs: {name: Tagged, title: !If [true, yes, no]}
  - model: authentik_stages_deny.denystage
    id: deny
    identifiers: {name: go-away}
    attrs: {deny_message: Not today}
  - model: authentik_flows.flowstagebinding
    identifiers: {target: !KeyOf flow, stage: !KeyOf deny, order: 1}
  - model: authentik_rbac.role
    identifiers: {name: auditors}
""")
        skips = {c.entry: c.details[0] for c in report.of("skip")}
        assert skips == {
            1: "uses the tag !If, which the portal does not support (supported: !KeyOf, !Find, !Env, "
               "!Context, !Format)",
            3: "refers to 'flow' (entry 1), which is skipped",
            4: "the portal has no equivalent of authentik_rbac.role",
        }
        assert flow_by_slug("tagged") is None
        deny = db.session.scalar(select(Stage).filter_by(name="go-away"))
        assert (deny.type, deny.options) == ("deny", {"deny_message": "Not today"})


def test_env_context_format_and_find(app, monkeypatch):
    monkeypatch.setenv("BLUEPRINT_TEAM", "Platform")
    text = """
version: 1
context: {suffix: default, region: eu}
entries:
  - model: authentik_core.group
    identifiers: {name: !Format ["team-%s-%s", !Env BLUEPRINT_TEAM, !Context suffix]}
    attrs:
      attributes:
        region: !Context region
        missing: !Context [nothing, fallback]
        unset: !Env [BLUEPRINT_UNSET, none-set]
  - model: authentik_stages_invitation.invitation
    identifiers: {name: found}
    attrs: {flow: !Find [authentik_flows.flow, [slug, default-enrollment-flow]]}
"""
    with app.app_context():
        _import(text, context={"suffix": "cli"})
        group = db.session.scalar(select(Group))
        assert group.name == "team-Platform-cli"
        assert group.attributes == {"region": "eu", "missing": "fallback", "unset": "none-set"}
        assert db.session.scalar(select(Invitation)).flow.slug == "default-enrollment-flow"


def test_env_cannot_read_the_portals_secrets(app, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "do-not-leak")
    errors = _refused(app, """
version: 1
entries:
  - model: authentik_core.group
    identifiers: {name: leak}
    attrs: {attributes: {key: !Env SECRET_KEY}}
""")
    assert errors == ["entry 1 (authentik_core.group): attributes.key: !Env SECRET_KEY: only variables "
                      "whose names begin with BLUEPRINT_ can be read by blueprints."]


def test_python_expressions_are_never_imported_as_text(app):
    with app.app_context():
        report = _import("""
version: 1
entries:
  - model: authentik_stages_prompt.prompt
    identifiers: {name: clever}
    attrs:
      field_key: clever
      type: text
      placeholder: "return request.user.username"
      placeholder_expression: true
      sub_text: Help
  - model: authentik_stages_prompt.prompt
    identifiers: {name: colour}
    attrs: {field_key: colour, type: dropdown, placeholder: Blue}
""")
        clever = db.session.scalar(select(Prompt).filter_by(name="clever"))
        assert clever.placeholder == "" and clever.help_text == "Help"
        assert any("never runs code" in n for n in report.changes[0].notes)
        colour = db.session.scalar(select(Prompt).filter_by(name="colour"))
        assert (colour.choices, colour.placeholder) == (["Blue"], "")


def test_alias_bombs_are_refused(app):
    lines = ["version: 1", "a0: &a0 [x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 120)]
    errors = _refused(app, "\n".join(lines) + "\nentries: []\n")
    # Doubling 18 times crosses the bound on the expanded size, long before 200 aliases.
    assert errors == ["Line 18, column 12: with its aliases expanded, the file is larger than "
                      "512 kB (the file is refused)."]
    many = "version: 1\nx: &x 1\ny: [" + ", ".join(["*x"] * 201) + "]\nentries: []\n"
    assert _refused(app, many) == ["Line 3, column 805: more than 200 YAML aliases (the file is "
                                   "refused)."]


# -- export --------------------------------------------------------------------------------------


@needs_blueprints
@pytest.mark.parametrize("name", ["flows-enrollment-2-stage.yaml", "flows-invitation-enrollment.yaml",
                                  "flows-enrollment-email-verification.yaml"])
def test_export_then_import_into_an_empty_database_gives_the_same_flow(app, name):
    with app.app_context():
        empty_database()
        report = _import(blueprint_text(name))
        exports = {}
        for slug in report.flow_slugs:
            exports[slug] = (export_flow(flow_by_slug(slug)), flow_snapshot(slug))
        for slug, (text, before) in exports.items():
            empty_database()
            again = _import(text)
            assert not again.of("skip") and not again.of("update")
            assert flow_snapshot(slug) == before
            # Exporting the re-imported flow gives the same file.
            assert export_flow(flow_by_slug(slug)) == text


def test_round_trip_keeps_every_setting(app):
    with app.app_context():
        group = Group(name="Ops & Friends", is_superuser=False, attributes={"cost_centre": 42})
        colour = Prompt(name="colour", field_key="attributes.colour", label="Colour", type="dropdown",
                        required=False, choices=[{"value": "b", "label": "Blue"}, "red"], help_text="Pick",
                        initial_value="red", order=3, options={"max_size": 10})
        terms = Prompt(name="terms", field_key="terms", label="I agree", type="checkbox")
        flow = Flow(slug="custom", name="Custom", title="Join us", designation="enrollment",
                    authentication="none")
        stages = [
            Stage(name="ask", type="prompt", options={}, prompts=[colour, terms]),
            Stage(name="consent", type="consent", options={"consent_text": "Be nice."}),
            Stage(name="mail", type="email", options={"token_expiry": "minutes=30", "subject": "Hi"}),
            Stage(name="write", type="user_write", options={"create_users_group": None,
                                                             "create_users_as_inactive": True}),
            Stage(name="stop", type="deny", options={"deny_message": "No"}),
        ]
        db.session.add_all([group, flow, *stages])
        db.session.flush()
        stages[3].options = {"create_users_group": group.id, "user_type": "external"}
        for order, stage in enumerate(stages):
            flow.bindings.append(FlowStageBinding(
                stage=stage, order=order * 10, evaluate_on_plan=order != 2, re_evaluate_policies=order == 2,
                condition={"type": "invitation_in_effect"} if order == 4 else None))
        db.session.commit()
        before = flow_snapshot("custom")
        text = export_flow(flow)
        empty_database()
        _import(text)
        assert flow_snapshot("custom") == before


def test_superuser_group_for_new_users_is_a_warning(app):
    with app.app_context():
        report = _import("""
version: 1
entries:
  - model: authentik_flows.flow
    id: flow
    identifiers: {slug: risky}
    attrs: {name: Risky, designation: enrollment}
  - model: authentik_core.group
    id: admins
    identifiers: {name: admins}
    attrs: {is_superuser: true}
  - model: authentik_stages_invitation.invitationstage
    id: gate
    identifiers: {name: risky-gate}
  - model: authentik_stages_user_write.userwritestage
    id: write
    identifiers: {name: risky-write}
    attrs: {create_users_group: !KeyOf admins}
  - model: authentik_flows.flowstagebinding
    identifiers: {target: !KeyOf flow, stage: !KeyOf gate, order: 0}
  - model: authentik_flows.flowstagebinding
    identifiers: {target: !KeyOf flow, stage: !KeyOf write, order: 10}
""", dry_run=True)
        assert report.warnings == ["Flow 'risky' puts every new user in the group 'admins', which has "
                                   "superuser rights."]


def test_binding_condition_must_be_a_portal_condition(app):
    errors = _refused(app, """
version: 1
entries:
  - model: authentik_flows.flow
    id: flow
    identifiers: {slug: conditional}
    attrs: {name: Conditional}
  - model: authentik_stages_deny.denystage
    id: deny
    identifiers: {name: conditional-deny}
  - model: authentik_flows.flowstagebinding
    identifiers: {target: !KeyOf flow, stage: !KeyOf deny, order: 1}
    attrs: {condition: "return request.user.is_anonymous"}
""")
    assert len(errors) == 1
    assert errors[0].startswith("entry 3 (authentik_flows.flowstagebinding): condition: ")
