"""Stage types describe themselves: every registered type's options round-trip through the admin
form, a blueprint export and an import into an empty database; and a new type needs one module
and one registration line (here: a test-only type registered by a fixture)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.access import Grants
from portal.extensions import db
from portal.flows.blueprints import export_flow, import_blueprint
from portal.flows.stages import STAGE_TYPES, Next, Option, StageType, register, unregister
from portal.flows.stages.options import (
    BOOL,
    CHOICE,
    CHOICES,
    EMAIL,
    FLOW,
    GROUP,
    PROMPTS,
    SOURCE,
    SOURCES,
    STAGE,
    STAGES,
    TEXT,
    TEXTAREA,
    OptionError,
    option_values,
)
from portal.models import Flow, FlowStageBinding, Group, OIDCSource, Prompt, Stage

from ...blueprint_helpers import empty_database
from ...conftest import submit

TEXT_SAMPLES = ("hours=1;minutes=5", "users/round/trip", "Some words to keep", "7")


def _reject_shouting(value) -> None:
    if str(value).isupper():
        raise OptionError("Please do not shout")


class ShoutStage(StageType):
    """A test-only stage type: one module's worth of declarations, nothing else."""

    type_name = "shout"
    label = "Shout"
    description = "Says something, then goes on (test only)."
    model = "example_stages_shout.shoutstage"
    declared_options = (
        Option("words", TEXT, "Words", default="hello", required=True, max_length=50,
               validate=_reject_shouting),
        Option("loud", BOOL, "Loud", default=False),
        Option("tone", CHOICE, "Tone", default="calm", choices=(("calm", "Calm"), ("gruff", "Gruff"))),
        Option("reply_to", EMAIL, "Reply to", default=""),
        Option("notes", TEXTAREA, "Notes", default=""),
        Option("greeters", GROUP, "Add to group", assigns=True),
        Option("next_flow", FLOW, "Then go to"),
    )

    def run(self, ctx):
        return Next()


@pytest.fixture
def shout_type():
    register(ShoutStage)
    yield ShoutStage
    unregister(ShoutStage.type_name)


@pytest.fixture
def editor(client, auth, admin):
    auth.login()
    return client


def _references(app):
    """Rows that reference options can point at, and their form values."""
    with app.app_context():
        group = Group(name="round-trip-group", attributes={})
        other = Flow(slug="round-trip-target", name="Target", title="Target")
        prompts = [Prompt(name=f"rt-{key}", field_key=key, label=key, type="text", order=n)
                   for n, key in enumerate(("first", "second"))]
        referred = Stage(name="round-trip-referred", type="password",
                         options={"failed_attempts_before_cancel": "3"})
        setup = Stage(name="rt-setup", type="authenticator_totp", options={})
        source = _source()
        db.session.add_all([group, other, referred, setup, source, *prompts])
        db.session.commit()
        return {"group": str(group.id), "flow": str(other.id), "stage": str(referred.id),
                "prompts": [str(p.id) for p in prompts], "stages": [str(setup.id)],
                "source": str(source.id)}


def _source() -> OIDCSource:
    """A source that reference options can name (blueprints refer to it by slug)."""
    return OIDCSource(name="Round trip IdP", slug="round-trip-idp", issuer="https://idp.test",
                      client_id="portal")


def _form_data(stage_type, refs) -> dict:
    """A value other than the default for every option the admin form shows."""
    data: dict = {"name": f"round-trip-{stage_type.type_name}"}
    for option in stage_type.declared_options:
        if not option.admin:
            continue
        kind = option.kind
        if kind is BOOL:
            if not option.default:
                data[option.key] = "y"  # unticked (absent) when the default is on
        elif kind in (TEXT, TEXTAREA):
            for sample in TEXT_SAMPLES:
                try:
                    if option.validate:
                        option.validate(sample)
                except ValueError:
                    continue
                data[option.key] = sample
                break
        elif kind is EMAIL:
            data[option.key] = "sender@example.com"
        elif kind is CHOICE:
            data[option.key] = option.choice_values()[-1]
        elif kind is CHOICES:
            data[option.key] = option.choice_values()[-1:]  # one of several: not the default
        elif kind is GROUP:
            data[option.key] = refs["group"]
        elif kind is FLOW:
            data[option.key] = refs["flow"]
        elif kind is STAGE:
            data[option.key] = refs["stage"]
        elif kind is PROMPTS:
            data[option.key] = refs["prompts"]
        elif kind is STAGES:
            data[option.key] = refs["stages"]
        elif kind is SOURCES:
            data[option.key] = [refs["source"]]
        elif kind is SOURCE:
            data[option.key] = refs["source"]
        else:  # a new kind needs a sample here
            raise AssertionError(f"no sample for option kind {kind.name}")
    return data


def _readable(stage_type, stage) -> dict:
    """A stage's declared options with references as names, so two databases compare."""
    values = option_values(stage_type, stage)
    for option in stage_type.declared_options:
        value = values.get(option.key)
        if option.kind is GROUP:
            values[option.key] = getattr(option.kind.row(value), "name", None)
        elif option.kind is FLOW:
            values[option.key] = getattr(option.kind.row(value), "slug", None)
        elif option.kind is STAGE:
            values[option.key] = getattr(option.kind.row(value), "name", None)
        elif option.kind is PROMPTS:
            values[option.key] = [p.name for p in stage.prompts]
        elif option.kind is STAGES:
            values[option.key] = [s.name for s in option.kind.rows(value)]
        elif option.kind is SOURCES:
            values[option.key] = [s.slug for s in option.kind.rows(value)]
        elif option.kind is SOURCE:
            values[option.key] = getattr(option.kind.row(value), "slug", None)
    return values


def _round_trip(app, editor, stage_type) -> tuple[dict, dict, dict]:
    refs = _references(app)
    data = _form_data(stage_type, refs)
    page = submit(editor, f"/admin/stages/new/{stage_type.type_name}", data)
    assert page.request.path == "/t/default/admin/stages/", page.get_data(as_text=True)
    with app.app_context():
        stage = db.session.scalar(select(Stage).filter_by(name=data["name"]))
        before = _readable(stage_type, stage)
        stored = dict(stage.options)
        flow = Flow(slug=f"rt-{stage_type.type_name}", name="Round trip", title="Round trip")
        flow.bindings.append(FlowStageBinding(stage=stage, order=10))
        db.session.add(flow)
        db.session.commit()
        text = export_flow(flow)
        empty_database()
        # The flow a FLOW option points at is found by its slug in the new database.
        db.session.add(Flow(slug="round-trip-target", name="Target", title="Target"))
        if db.session.scalar(select(OIDCSource)) is None:  # referred to, never imported
            db.session.add(_source())
        db.session.commit()
        report = import_blueprint(text, actor=Grants(superuser=True))
        assert report.ok, report.errors
        assert [c.notes for c in report.changes if c.model == stage_type.model] == [[]]
        stage = db.session.scalar(select(Stage).filter_by(name=data["name"]))
        return before, _readable(stage_type, stage), stored


@pytest.mark.parametrize("type_name", sorted(STAGE_TYPES))
def test_every_stage_types_options_round_trip(app, editor, type_name):
    stage_type = STAGE_TYPES[type_name]
    before, after, stored = _round_trip(app, editor, stage_type)
    assert after == before
    # The form really stored the non-default values (a round trip of defaults proves little).
    for option in stage_type.declared_options:
        if option.admin and option.kind in (TEXT, TEXTAREA, EMAIL, CHOICE):
            assert stored[option.key] not in (None, "", option.default), option.key


def test_a_new_stage_type_is_one_module_and_one_line(app, editor, shout_type):
    page = editor.get("/admin/stages/new").get_data(as_text=True)
    assert 'href="/t/default/admin/stages/new/shout"' in page and "Says something, then goes on" in page
    form = editor.get("/admin/stages/new/shout").get_data(as_text=True)
    for key in ("words", "loud", "tone", "reply_to", "notes", "greeters", "next_flow"):
        assert f'name="{key}"' in form, key
    # The option's own rule refuses a value on the form...
    refused = submit(editor, "/admin/stages/new/shout", {"name": "s", "words": "HEY"})
    assert "Please do not shout." in refused.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Stage).filter_by(name="s")) is None

    before, after, _ = _round_trip(app, editor, shout_type)
    assert after == before
    assert before["greeters"] == "round-trip-group" and before["next_flow"] == "round-trip-target"
    # ...and the same rule refuses it in a blueprint, naming the entry and attribute.
    with app.app_context():
        report = import_blueprint("version: 1\nentries:\n- model: example_stages_shout.shoutstage\n"
                                  "  identifiers: {name: loud-one}\n  attrs: {words: HEY}\n",
                                  actor=Grants(superuser=True))
    assert report.errors == ["entry 1 (example_stages_shout.shoutstage): words: Please do not "
                             "shout."]
    # The privilege ceiling reads the declared group option.
    with app.app_context():
        stage = db.session.scalar(select(Stage).filter_by(type="shout"))
        assert [g.name for g in shout_type(stage).assigned_groups()] == ["round-trip-group"]


def test_attributes_no_option_declares_are_reported_as_not_used(app):
    """terminate_other_sessions (user login) and an attribute consent has no option for are read
    by no stage: the report says so, and they are not stored. session_duration, and consent's
    mode and consent_expire_in, are declared options: stored, and not reported."""
    text = """
version: 1
entries:
- model: authentik_stages_user_login.userloginstage
  identifiers: {name: login}
  attrs: {session_duration: hours=8, terminate_other_sessions: true}
- model: authentik_stages_consent.consentstage
  identifiers: {name: terms}
  attrs: {mode: expiring, consent_expire_in: weeks=4, consent_text: Be nice., flavour: mint}
"""
    with app.app_context():
        report = import_blueprint(text, actor=Grants(superuser=True))
        assert report.ok, report.errors
        assert [c.notes for c in report.changes] == [
            ["terminate_other_sessions: not used by the portal's user login stage (no option of "
             "it reads this); ignored"],
            ["flavour: not used by the portal's consent / terms stage (no option of it reads "
             "this); ignored"],
        ]
        terms = db.session.scalar(select(Stage).filter_by(name="terms"))
        assert terms.options == {"consent_text": "Be nice.", "mode": "expiring",
                                 "consent_expire_in": "weeks=4"}
        assert db.session.scalar(select(Stage).filter_by(name="login")).options == {
            "session_duration": "hours=8"}


@pytest.mark.parametrize("global_settings,note", [
    (True, "host, port: not acted on, and not needed: authentik's per-stage SMTP server, which "
           "use_global_settings: true turns off there too; the portal's mail server "
           "(MAIL_SERVER) sends"),
    (False, "host, port: not used by the portal's email verification stage (no option of it "
            "reads this); ignored"),
])
def test_smtp_attributes_are_reported_as_not_needed_only_under_global_settings(
        app, global_settings, note):
    """An email stage's own SMTP server is irrelevant when it uses the global settings (as in
    authentik); without them the portal still sends through its own server, so they are
    dropped, and the report says that instead."""
    text = f"""
version: 1
entries:
- model: authentik_stages_email.emailstage
  identifiers: {{name: mail}}
  attrs: {{use_global_settings: {str(global_settings).lower()}, host: smtp.example, port: 587}}
"""
    with app.app_context():
        report = import_blueprint(text, actor=Grants(superuser=True))
        assert report.ok, report.errors
        assert [c.notes for c in report.changes] == [[note]]


def test_stages_hand_notices_to_the_step_not_to_flash(app):
    """Driven without HTTP: the email stage's problem travels on the Step."""
    from datetime import timedelta

    from portal.flows import executor
    from portal.flows.executor import FlowExecutor

    from ...flowkit import make_flow

    make_flow(app, "notices", [{"type": "email", "name": "mail"}])
    with app.app_context():
        app.config["MAIL_SERVER"] = ""
        flow = db.session.scalar(select(Flow).filter_by(slug="notices"))
        session, _ = executor.start(flow, None, current_user=None, lifetime=timedelta(hours=1))
        session.prompt_data = {"email": "vera@example.com"}
        db.session.commit()
        step = FlowExecutor(session, base_url="http://portal.test").step()
        assert step.kind == "page"
        assert step.notices == [("error", "This portal cannot send email yet. Ask the person who "
                                          "invited you to configure its mail server, then open "
                                          "your link again.")]
