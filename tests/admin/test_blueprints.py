"""Flows → Import and export, through the admin pages (CSRF on) and the command line."""

from __future__ import annotations

import html as html_lib
import re

import yaml
from sqlalchemy import select

from portal.extensions import db
from portal.flows.blueprints import BlueprintLoader, flow_by_slug
from portal.models import Flow, Group, Invitation

from ..blueprint_helpers import BLUEPRINTS, blueprint_text, empty_database, needs_blueprints, row_counts
from ..conftest import TEST_PASSWORD, csrf_from, numbers_in
from ..helpers import IMPORT, upload_blueprint

IMPORT_SUMMARY = "{} created, {} updated, {} deleted, {} unchanged, {} skipped"
SMALL = """version: 1
metadata: {name: Small team}
entries:
  - model: authentik_flows.flow
    id: flow
    identifiers: {slug: small-team}
    attrs: {name: Small team, title: Join the small team, designation: enrollment}
  - model: authentik_stages_invitation.invitationstage
    id: gate
    identifiers: {name: small-gate}
  - model: authentik_flows.flowstagebinding
    identifiers: {target: !KeyOf flow, stage: !KeyOf gate, order: 0}
  - model: authentik_policies_expression.expressionpolicy
    identifiers: {name: clever}
    attrs: {expression: "return True"}
"""




def _apply(client, preview_html: str):
    blueprint = re.search(r'name="blueprint" type="hidden" value="([^"]*)"', preview_html)
    assert blueprint, "the preview has no apply form"
    return client.post("/admin/flows/import/apply", data={
        "csrf_token": csrf_from(preview_html), "blueprint": html_lib.unescape(blueprint.group(1)),
    }, follow_redirects=True)


def test_upload_preview_apply(app, client, auth, admin):
    auth.login()
    page = client.get(IMPORT).get_data(as_text=True)
    assert 'href="/t/default/admin/flows/import" aria-current="page">Import flow</a>' in page
    with app.app_context():
        counts = row_counts()

    preview = upload_blueprint(client, content=SMALL.encode())
    html = preview.get_data(as_text=True)
    assert preview.status_code == 200
    assert "Preview: import blueprint" in html and "Small team" in html
    assert numbers_in(html, "Will be created ({})") == 3 and "flow &#39;small-team&#39;" in html
    assert numbers_in(html, "Skipped: not supported by the portal ({})") == 1
    assert "expression policies run Python code" in html
    with app.app_context():
        assert row_counts() == counts  # the preview wrote nothing

    result = _apply(client, html)
    done = result.get_data(as_text=True)
    assert result.status_code == 200 and "Blueprint imported" in done
    assert numbers_in(done, IMPORT_SUMMARY) == (3, 0, 0, 0, 1)
    with app.app_context():
        flow = flow_by_slug("small-team")
        assert flow.title == "Join the small team"
        assert [b.stage.name for b in flow.bindings] == ["small-gate"]
    assert f'href="/t/default/admin/flows/{flow.id}/export"' in done

    # Applying the same preview again changes nothing and duplicates nothing.
    again = _apply(client, html).get_data(as_text=True)
    assert numbers_in(again, IMPORT_SUMMARY) == (0, 0, 0, 3, 1)
    with app.app_context():
        assert row_counts()["flows"] == counts["flows"] + 1


def test_pasted_yaml_works_too(app, client, auth, admin):
    auth.login()
    html = upload_blueprint(client, text=SMALL).get_data(as_text=True)
    assert numbers_in(html, "Will be created ({})") == 3


def test_bad_yaml_is_rejected_whole_with_the_line(app, client, auth, admin):
    auth.login()
    with app.app_context():
        counts = row_counts()
    bad = "version: 1\nentries:\n  - model: authentik_core.group\n    attrs: [oops\n"
    response = upload_blueprint(client, content=bad.encode())
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "The blueprint cannot be imported; nothing was changed." in html
    assert "Line 5, column 1:" in html
    assert "attrs: [oops" in html  # kept in the text box to correct
    assert 'name="blueprint"' not in html  # no way to apply it
    with app.app_context():
        assert row_counts() == counts


def test_entry_errors_are_listed(app, client, auth, admin):
    auth.login()
    text = SMALL.replace("stage: !KeyOf gate", "stage: !KeyOf gaet")
    html = upload_blueprint(client, text=text).get_data(as_text=True)
    assert ("entry 3 (authentik_flows.flowstagebinding): stage: !KeyOf &#39;gaet&#39; refers to no "
            "entry id.") in html


def test_upload_form_errors(app, client, auth, admin):
    auth.login()
    html = upload_blueprint(client).get_data(as_text=True)
    assert "Choose a file or paste a blueprint." in html
    html = upload_blueprint(client, content=b"x", filename="flow.json").get_data(as_text=True)
    assert "Choose a .yaml or .yml file." in html
    html = upload_blueprint(client, content="version: 1\n".encode("utf-16")).get_data(as_text=True)
    assert "The file is not UTF-8 text." in html


def test_apply_rechecks_what_it_is_given(app, client, auth, admin):
    auth.login()
    html = upload_blueprint(client, text=SMALL).get_data(as_text=True)
    tampered = html.replace("designation: enrollment", "designation: nonsense")
    response = _apply(client, tampered)
    assert response.status_code == 422
    assert "designation: &#39;nonsense&#39; is not one of" in response.get_data(as_text=True)
    with app.app_context():
        assert flow_by_slug("small-team") is None


def test_apply_needs_csrf_and_an_admin(app, client, auth, admin):
    response = client.post("/admin/flows/import/apply", data={"blueprint": SMALL})
    assert response.status_code == 400
    assert client.get(IMPORT).status_code == 302  # anonymous: sign in first
    with app.app_context():
        from portal.auth.service import create_user

        create_user(username="plain", email="plain@example.com", password=TEST_PASSWORD)
    auth.login("plain")
    assert client.get(IMPORT).status_code == 403
    assert client.get("/admin/flows/1/export").status_code == 403
    with app.app_context():
        assert flow_by_slug("small-team") is None


def test_export_downloads_yaml_that_imports_again(app, client, auth, admin):
    auth.login()
    with app.app_context():
        flow_id = flow_by_slug("default-enrollment-flow").id
    response = client.get(f"/admin/flows/{flow_id}/export")
    assert response.status_code == 200
    assert response.mimetype == "application/yaml"
    assert response.headers["Content-Disposition"] == 'attachment; filename="default-enrollment-flow.yaml"'
    document = yaml.load(response.get_data(as_text=True), Loader=BlueprintLoader)  # noqa: S506
    assert document["version"] == 1
    assert [e["model"] for e in document["entries"]][:1] == ["authentik_flows.flow"]
    assert client.get("/admin/flows/999999/export").status_code == 404
    page = client.get(IMPORT).get_data(as_text=True)
    assert f'href="/t/default/admin/flows/{flow_id}/export"' in page

    with app.app_context():
        empty_database()
    html = upload_blueprint(client, content=response.data).get_data(as_text=True)
    done = _apply(client, html).get_data(as_text=True)
    assert "Blueprint imported" in done
    with app.app_context():
        assert [b.order for b in flow_by_slug("default-enrollment-flow").bindings] == [5, 10, 11, 20, 100]


@needs_blueprints
def test_admin_imports_authentiks_invitation_example(app, client, auth, admin):
    auth.login()
    content = blueprint_text("flows-invitation-enrollment.yaml").encode()
    html = upload_blueprint(client, content=content,
                   filename="flows-invitation-enrollment.yaml").get_data(as_text=True)
    assert numbers_in(html, "Will be created ({})") == 38
    _apply(client, html)
    with app.app_context():
        assert db.session.scalar(select(Group).filter_by(name="engineering-team")) is not None
        assert len(db.session.scalars(select(Invitation)).all()) == 5
        # With the seeded enrollment, authentication and recovery flows.
        assert len(db.session.scalars(select(Flow)).all()) == 6
        from portal.models import AuditEvent

        imported = db.session.scalars(select(AuditEvent).filter_by(action="flow.imported")).all()
        assert len(imported) == 3 and {e.actor_name for e in imported} == {"admin"}
    listing = client.get("/admin/invitations/").get_data(as_text=True)
    assert "example-engineering-team-invitation" in listing


# -- command line -------------------------------------------------------------------------------


@needs_blueprints
def test_cli_import_dry_run_then_apply(app, runner):
    path = str(BLUEPRINTS / "flows-unenrollment.yaml")
    result = runner.invoke(args=["blueprints", "import", path, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Blueprint: Example - User deletion" in result.output
    assert "why:" not in result.output  # the user delete stage is a stage type now
    assert numbers_in(result.output, "{} to create, {} to update, {} to delete, {} unchanged, {} skipped."
                      ) == (3, 0, 0, 0, 0)
    assert "Dry run: nothing was written." in result.output
    with app.app_context():
        assert flow_by_slug("default-unenrollment-flow") is None
    result = runner.invoke(args=["blueprints", "import", path])
    assert result.exit_code == 0 and "Imported." in result.output
    assert numbers_in(result.output, IMPORT_SUMMARY + ".") == (3, 0, 0, 0, 0)
    with app.app_context():
        assert flow_by_slug("default-unenrollment-flow").designation == "unenrollment"


def test_cli_reports_errors_and_writes_nothing(app, runner, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMALL.replace("!KeyOf gate", "!KeyOf nope"))
    result = runner.invoke(args=["blueprints", "import", str(bad)])
    assert result.exit_code == 1
    assert "entry 3 (authentik_flows.flowstagebinding): stage: !KeyOf 'nope' refers to no entry id." in (
        result.output)
    assert "Nothing was imported." in result.output
    with app.app_context():
        assert flow_by_slug("small-team") is None

    context = tmp_path / "context.yaml"
    context.write_text("version: 1\nentries:\n  - model: authentik_core.group\n"
                       "    identifiers: {name: !Context team}\n")
    result = runner.invoke(args=["blueprints", "import", str(context), "--context", "team=ops"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.scalar(select(Group.name)) == "ops"


def test_cli_export(app, runner, tmp_path):
    result = runner.invoke(args=["blueprints", "export", "default-enrollment-flow"])
    assert result.exit_code == 0
    assert "slug: default-enrollment-flow" in result.output
    assert "!KeyOf" in result.output
    out = tmp_path / "flow.yaml"
    result = runner.invoke(args=["blueprints", "export", "default-enrollment-flow", "-o", str(out)])
    assert result.exit_code == 0 and out.read_text().startswith("# Exported from the invitation portal")
    result = runner.invoke(args=["blueprints", "export", "no-such-flow"])
    assert result.exit_code == 1 and "No flow has the slug 'no-such-flow'." in result.output
