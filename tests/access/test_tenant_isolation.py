"""Tenant isolation, tested route by route: a tenant admin of "alpha" reaches nothing of "beta".

One world for the module (restored before each test): tenants alpha and beta, each with an
admin holding every permission through a group and role of their tenant; beta owns a flow (with
a stage and a prompt), a group, a role, a member, an invitation with an email in the outbox,
and audit events. Every admin route is taken from app.url_map: a route the matrix does not
know fails the test, so a new route must say how it is kept to its tenant.
"""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import func, select

from portal import create_app, tenants
from portal.access import PERMISSIONS
from portal.auth import service as accounts
from portal.extensions import db
from portal.invitations import service
from portal.models import (
    AuditEvent,
    Flow,
    FlowStageBinding,
    Group,
    Invitation,
    OIDCSource,
    OutboxMessage,
    Prompt,
    Role,
    Stage,
    Tenant,
    User,
    tenant_members,
)

from ..conftest import (
    TEST_PASSWORD,
    _drop_schema,
    _fresh_schema,
    csrf_from,
    database_url,
    restore_rows,
    saved_rows,
    sign_in,
)
from ..flowkit import make_flow

BETA_NAMES = ("beta-secret-group", "beta-secret-role", "beta-secret-invite", "beta-flow",
              "beta-stage", "beta-prompt", "bob-of-beta", "beta-secret-source")

# Which world object each URL argument names (always beta's), and the value of other arguments.
ARGUMENTS = {"invitation_id": "invitation", "flow_id": "flow", "binding_id": "binding",
             "stage_id": "stage", "prompt_id": "prompt", "role_id": "role", "group_id": "group",
             "user_id": "user", "message_id": "message", "device_id": "device",
             "source_id": "source"}
FIXED = {"direction": "up", "kind": "prompt", "action": "resend"}
# Routes whose URL names no object: how each is kept to its tenant (a test below each).
WITHOUT_IDS = {
    "admin.dashboard": "list", "admin.access": "list", "admin.audit_log": "list",
    "admin.audit_export": "list", "admin.flows": "list", "admin.invitations": "list",
    "admin.invitations_links_csv": "list", "admin.prompts": "list", "admin.stages": "list",
    "admin.users": "list", "admin.stage_types": "list",
    "admin.flow_create": "form", "admin.prompt_create": "form", "admin.user_create": "form",
    "admin.role_edit": "form", "admin.group_edit": "form", "admin.stage_create": "form",
    "admin.invitation_create": "forged", "admin.invitations_bulk": "forged",
    "admin.invitations_bulk_action": "forged", "admin.blueprint_import": "find",
    "admin.blueprint_apply": "find",
    # Sign-in sources: the tenant's own (instance-wide ones are superadmins' only: a test below).
    "admin.sources": "list", "admin.source_edit": "form",
    # Adding an existing account: superadmins only (it tells which accounts exist; a test below).
    "admin.user_add_member": "superadmin",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url(tmp_path_factory.mktemp("tenants"))})
    _fresh_schema(app)
    ids = _build_world(app)
    yield app, ids, saved_rows(app)
    _drop_schema(app)


@pytest.fixture
def world(built):
    app, ids, rows = built
    restore_rows(app, rows)
    return app, ids


def _build_world(app) -> dict:
    make_flow(app, "beta-flow", [{"type": "invitation", "name": "beta-invitation-stage"},
                                 {"type": "prompt", "name": "beta-stage",
                                  "prompts": [{"field_key": "answer", "name": "beta-prompt"}]}])
    with app.app_context():
        accounts.create_user(username="root", email="root@example.com", password=TEST_PASSWORD,
                             superuser=True)
        ids = {}
        for slug in ("alpha", "beta"):
            tenant = tenants.create_tenant(name=slug.title(), slug=slug)
            tenants.use_tenant(tenant)
            admin = accounts.create_user(username=f"{slug}-admin", email=f"{slug}@example.com",
                                         password=TEST_PASSWORD)
            group = Group(name=f"{slug}-admins", attributes={},
                          roles=[Role(name=f"{slug}-all", permissions=sorted(PERMISSIONS))])
            admin.groups.append(group)
            db.session.commit()
            ids[slug] = tenant.id
        beta = db.session.get(Tenant, ids["beta"])
        tenants.use_tenant(beta)
        flow = db.session.scalar(select(Flow).filter_by(slug="beta-flow"))
        stage = db.session.scalar(select(Stage).filter_by(name="beta-stage"))
        prompt = db.session.scalar(select(Prompt).filter_by(name="beta-prompt"))
        flow.tenant_id = stage.tenant_id = prompt.tenant_id = beta.id
        db.session.scalar(select(Stage).filter_by(name="beta-invitation-stage")).tenant_id = beta.id
        role = Role(name="beta-secret-role", permissions=["audit:view"])
        group = Group(name="beta-secret-group", attributes={}, roles=[role])
        bob = accounts.create_user(username="bob-of-beta", email="bob@example.com",
                                   password=TEST_PASSWORD)
        bob.groups.append(group)
        db.session.commit()
        invitation = service.create_invitation(name="beta-secret-invite", flow=flow, expires_at=None,
                                               email="carol@example.com", groups=[group])
        message = service.queue_invitation_email(invitation, "http://portal.test")
        db.session.commit()
        source = _source("beta-secret-source", tenant_id=beta.id)
        ids["instance_source"] = _source("instance-source", tenant_id=None).id
        ids.update(source=source.id)
        ids.update(flow=flow.id, stage=stage.id, prompt=prompt.id, role=role.id, group=group.id,
                   user=bob.id, invitation=invitation.id, message=message.id, device=1,
                   binding=db.session.scalars(select(FlowStageBinding.id).filter_by(flow_id=flow.id)).first(),
                   link=service.invitation_link(invitation, "http://portal.test"))
        return ids


def _source(slug: str, *, tenant_id: int | None):
    from portal.sources import service as sources

    return sources.save_source(None, {
        "name": slug, "slug": slug, "issuer": "https://idp.example.com", "client_id": slug,
        "client_secret": "s3cret", "scopes": "openid email", "tenant_id": tenant_id,
    }, actor=None, ip=None)


def _beta_rows(app) -> dict:
    """What beta owns, counted (the same before and after every refused attempt)."""
    with app.app_context():
        counts = {model.__name__: db.session.scalar(select(func.count(model.id)).where(
            model.tenant_id == db.session.scalar(select(Tenant.id).filter_by(slug="beta"))))
            for model in (Group, Role, Invitation, Flow, Stage, Prompt)}
        counts["bindings"] = db.session.scalar(select(func.count(FlowStageBinding.id)))
        counts["members"] = db.session.scalar(select(func.count()).select_from(tenant_members))
        invitation = db.session.scalar(select(Invitation).filter_by(name="beta-secret-invite"))
        counts["revoked"] = invitation.revoked_at is not None
        counts["bob active"] = db.session.scalar(select(User.active).filter_by(username="bob-of-beta"))
        counts["group names"] = sorted(db.session.scalars(select(Group.name)))
        counts["sources"] = sorted(db.session.execute(select(OIDCSource.slug, OIDCSource.name,
                                                             OIDCSource.tenant_id)).all())
        return counts


def _alpha_admin(app):
    client = app.test_client()
    assert sign_in(client, "alpha-admin", TEST_PASSWORD, follow_redirects=False).status_code == 302
    return client


def _token(client) -> str:
    return csrf_from(client.get("/account/").get_data(as_text=True))


def _url(rule, ids) -> str:
    url = rule.rule.replace("<tenant>", "alpha")
    url = re.sub(r"<any\(([^,)]+)[^>]*>", r"\1", url)
    for name in rule.arguments - {"tenant"} - set(rule.defaults or {}):
        value = ids[ARGUMENTS[name]] if name in ARGUMENTS else FIXED[name]
        url = re.sub(rf"<(?:[a-z]+:)?{name}>", str(value), url)
    return url


def test_every_admin_route_is_in_the_matrix(world):
    app, _ = world
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("admin."):
            unknown = rule.arguments - {"tenant"} - set(rule.defaults or {}) - set(ARGUMENTS) - set(FIXED)
            assert not unknown, f"{rule.rule}: the matrix does not know {unknown}"
            if not rule.arguments & set(ARGUMENTS):
                assert rule.endpoint in WITHOUT_IDS, f"{rule.endpoint} ({rule.rule}) is not in the matrix"


def test_a_tenant_admin_gets_404_for_every_object_of_another_tenant(world):
    """Every admin route naming an object by id, with beta's ids in alpha's URL: GET and POST
    answer 404 (or 403), and beta's rows are exactly as they were."""
    app, ids = world
    before = _beta_rows(app)
    client = _alpha_admin(app)
    token = _token(client)
    tried = 0
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("admin.") or not rule.arguments & set(ARGUMENTS):
            continue
        url = _url(rule, ids)
        for method in sorted(rule.methods & {"GET", "POST"}):
            data = {"csrf_token": token, "name": "hijacked", "slug": "hijacked"} if method == "POST" else None
            response = client.open(url, method=method, data=data)
            assert response.status_code in (403, 404), (method, url, response.status_code)
            page = response.get_data(as_text=True)
            assert not any(name in page for name in BETA_NAMES), (method, url)
            tried += 1
    assert tried >= 30
    assert _beta_rows(app) == before


def test_lists_counts_searches_and_exports_show_nothing_of_another_tenant(world):
    app, _ = world
    client = _alpha_admin(app)
    for rule in app.url_map.iter_rules():
        if WITHOUT_IDS.get(rule.endpoint) not in (None, "superadmin") and "GET" in rule.methods \
                and not rule.arguments & set(ARGUMENTS):
            # lists, counts, searches, exports, and the choices of every form
            for query in ("", "?q=beta", "?search=beta", "?status=pending"):
                url = _url(rule, {}) + query
                response = client.get(url)
                assert response.status_code == 200, url
                page = html.unescape(response.get_data(as_text=True))
                assert not any(name in page for name in BETA_NAMES), url
    dashboard = html.unescape(client.get("/t/alpha/admin/").get_data(as_text=True))
    with app.app_context():
        members = db.session.scalar(select(func.count()).select_from(User).where(
            tenants.visible(User, db.session.scalar(select(Tenant).filter_by(slug="alpha")))))
    assert members == 1  # alpha-admin alone
    assert "bob-of-beta" not in dashboard


def test_instance_wide_sources_are_superadmins_only_and_a_tenant_admin_makes_its_own(world):
    """alpha's admin neither sees nor changes an instance-wide source (404, as absent); a
    source they create belongs to alpha; a superadmin sees and manages both kinds."""
    app, ids = world
    before = _beta_rows(app)
    client = _alpha_admin(app)
    token = _token(client)
    wide = ids["instance_source"]
    listed = client.get("/t/alpha/admin/sources/").get_data(as_text=True)
    assert "instance-source" not in listed
    for method, url in (("GET", f"/t/alpha/admin/sources/{wide}"),
                        ("POST", f"/t/alpha/admin/sources/{wide}"),
                        ("POST", f"/t/alpha/admin/sources/{wide}/delete")):
        response = client.open(url, method=method, data={"csrf_token": token, "name": "taken"})
        assert response.status_code == 404, (method, url)
    page = client.get("/t/alpha/admin/sources/new").get_data(as_text=True)
    assert "Instance-wide" not in page  # not theirs to choose
    response = client.post("/t/alpha/admin/sources/new", data={
        "csrf_token": csrf_from(page), "name": "Alpha IdP", "slug": "alpha-idp",
        "issuer": "https://alpha.example.com", "client_id": "alpha", "client_secret": "x",
        "scopes": "openid email", "matching_mode": "email_link", "instance_wide": "y",
        "enabled": "y", "show_on_login": "y"})
    assert response.status_code == 302, response.get_data(as_text=True)
    with app.app_context():
        made = db.session.scalar(select(OIDCSource).filter_by(slug="alpha-idp"))
        assert made.tenant_id == ids["alpha"]
    assert "Alpha IdP" in client.get("/t/alpha/admin/sources/").get_data(as_text=True)
    assert _beta_rows(app)["sources"] == sorted([*before["sources"],
                                                 ("alpha-idp", "Alpha IdP", ids["alpha"])])
    root = app.test_client()
    sign_in(root, "root", TEST_PASSWORD)
    listed = root.get("/t/alpha/admin/sources/").get_data(as_text=True)
    assert "instance-source" in listed and "Alpha IdP" in listed
    assert "beta-secret-source" not in listed  # beta's own are listed under /t/beta/
    assert root.get(f"/t/alpha/admin/sources/{wide}").status_code == 200
    assert root.get(f"/t/beta/admin/sources/{ids['source']}").status_code == 200


def test_forged_ids_in_bulk_actions_and_forms_touch_nothing_of_another_tenant(world):
    app, ids = world
    before = _beta_rows(app)
    client = _alpha_admin(app)
    token = _token(client)
    for action in ("revoke", "delete"):
        client.post("/t/alpha/admin/invitations/bulk-action",
                    data={"csrf_token": token, "action": action, "ids": [str(ids["invitation"])]})
    # A new invitation (single and bulk) naming beta's flow and group: refused, nothing made.
    for url, extra in (("/t/alpha/admin/invitations/new", {"name": "forged", "mode": "link"}),
                       ("/t/alpha/admin/invitations/bulk", {"emails": "x@example.com"})):
        response = client.post(url, data={"csrf_token": token, "flow": str(ids["flow"]),
                                          "groups": [str(ids["group"])], **extra})
        assert response.status_code in (200, 400, 403, 404)
    with app.app_context():
        assert db.session.scalar(select(func.count(Invitation.id)).where(
            Invitation.name.in_(["forged"]))) == 0
    assert _beta_rows(app) == before


def test_only_a_superadmin_adds_an_existing_account_and_only_with_the_tenants_own_grants(world):
    """A tenant admin may not add accounts (nor learn whether one exists: the same 403 for any
    name); a superadmin acting in alpha cannot give beta's group or role through forged ids."""
    app, ids = world
    before = _beta_rows(app)
    url = "/t/alpha/admin/users/add-member"
    client = _alpha_admin(app)
    token = _token(client)
    for account in ("bob-of-beta", "nobody"):
        assert client.get(url).status_code == 403
        assert client.post(url, data={"csrf_token": token, "account": account}).status_code == 403
    root = app.test_client()
    sign_in(root, "root", TEST_PASSWORD)
    forged = root.post(url, data={"csrf_token": _token(root), "account": "bob-of-beta",
                                  "groups": [str(ids["group"])], "roles": [str(ids["role"])]})
    page = html.unescape(forged.get_data(as_text=True))
    assert forged.status_code == 200
    assert f"'{ids['group']}' is not a valid choice for this field." in page
    assert f"'{ids['role']}' is not a valid choice for this field." in page
    assert _beta_rows(app) == before
    with app.app_context():
        bob = db.session.scalar(select(User).filter_by(username="bob-of-beta"))
        assert [t.slug for t in bob.tenants] == ["beta"]


def test_a_blueprint_cannot_find_or_change_another_tenants_objects(world):
    app, ids = world
    before = _beta_rows(app)
    client = _alpha_admin(app)
    text = ("version: 1\nentries:\n"
            "- model: authentik_core.group\n  identifiers: {name: beta-secret-group}\n"
            "  attrs: {is_superuser: false}\n"
            "- model: authentik_flows.flowstagebinding\n"
            "  identifiers: {target: !Find [authentik_flows.flow, [slug, beta-flow]], order: 99,\n"
            "                stage: !Find [authentik_stages_prompt.promptstage, [name, beta-stage]]}\n")
    page = client.get("/t/alpha/admin/flows/import").get_data(as_text=True)
    response = client.post("/t/alpha/admin/flows/import/apply",
                           data={"csrf_token": csrf_from(page), "text": text})
    assert response.status_code in (200, 302, 400, 403, 404, 422)
    after = _beta_rows(app)
    assert {k: v for k, v in after.items() if k != "group names"} == \
        {k: v for k, v in before.items() if k != "group names"}
    # At most alpha got a group of its own called so; beta's is untouched and unseen.
    with app.app_context():
        beta_group = db.session.get(Group, ids["group"])
        assert (beta_group.name, beta_group.tenant_id) == ("beta-secret-group", ids["beta"])


def test_instance_wide_flows_are_readable_by_every_tenant_but_editable_only_by_superadmins(world):
    app, _ = world
    client = _alpha_admin(app)
    with app.app_context():
        shared = db.session.scalar(select(Flow).filter_by(slug="default-enrollment-flow"))
        assert shared.tenant_id is None
        shared_id = shared.id
    assert client.get(f"/t/alpha/admin/flows/{shared_id}").status_code == 200
    response = client.post(f"/t/alpha/admin/flows/{shared_id}/edit",
                           data={"csrf_token": _token(client), "name": "mine now"})
    assert response.status_code == 403
    root = app.test_client()
    sign_in(root, "root", TEST_PASSWORD)
    assert root.get(f"/t/alpha/admin/flows/{shared_id}/edit").status_code == 200


def test_the_cli_asks_which_tenant_once_there_are_several(world, tmp_path):
    app, _ = world
    runner = app.test_cli_runner()
    result = runner.invoke(args=["blueprints", "export", "beta-flow"])
    assert result.exit_code != 0 and "--tenant" in result.output
    result = runner.invoke(args=["blueprints", "export", "beta-flow", "--tenant", "alpha"])
    assert result.exit_code != 0 and "No flow has the slug" in result.output
    result = runner.invoke(args=["blueprints", "export", "beta-flow", "--tenant", "beta"])
    assert result.exit_code == 0 and "beta-stage" in result.output


def test_an_invitation_never_works_in_a_flow_of_another_tenant(world):
    app, ids = world
    with app.app_context():
        alpha = db.session.get(Tenant, ids["alpha"])
        tenants.use_tenant(alpha)
        flow = db.session.get(Flow, ids["flow"])  # beta's flow
        invitation = service.create_invitation(name="alpha-into-beta", flow=flow, expires_at=None)
        assert invitation.tenant_id == alpha.id
        refusal = service.refusal_for(invitation, flow, token_supplied=True)
        assert refusal is not None and refusal.reason == "wrong_flow"
        assert not service.redeem(invitation.id, flow.id)
        link = service.invitation_link(invitation, "http://portal.test")
    page = app.test_client().get(link.removeprefix("http://portal.test"), follow_redirects=True)
    assert page.status_code == 404


def test_a_deactivated_tenant_refuses_its_invitations_and_its_admins(world):
    app, ids = world
    with app.app_context():
        beta = db.session.get(Tenant, ids["beta"])
        tenants.update_tenant(beta, name=beta.name, slug=beta.slug, active=False)
    page = app.test_client().get(ids["link"].removeprefix("http://portal.test"), follow_redirects=True)
    assert page.status_code == 403
    assert "This invitation is paused" in html.unescape(page.get_data(as_text=True))
    client = app.test_client()
    sign_in(client, "beta-admin", TEST_PASSWORD)
    refused = client.get("/t/beta/admin/invitations/")
    assert refused.status_code == 403 and "This tenant is deactivated" in refused.get_data(as_text=True)
    root = app.test_client()
    sign_in(root, "root", TEST_PASSWORD)
    assert root.get("/t/beta/admin/invitations/").status_code == 200


def test_audit_events_stay_in_their_tenant(world):
    app, ids = world
    with app.app_context():
        beta_events = db.session.scalar(select(func.count(AuditEvent.id)).where(
            AuditEvent.tenant_id == ids["beta"]))
        assert beta_events >= 1
    client = _alpha_admin(app)
    csv = client.get("/t/alpha/admin/audit/export.csv").get_data(as_text=True)
    assert "beta-secret-invite" not in csv
    assert OutboxMessage  # the outbox message of beta is covered by the retry route above


def test_a_person_in_two_tenants_shows_only_this_tenants_groups_and_stays_theirs(world):
    """Accounts are instance-wide: alpha's admin sees a shared member with alpha's groups only,
    and may not lock them out (that would lock them out of beta too)."""
    app, ids = world
    with app.app_context():
        tenants.use_tenant(db.session.get(Tenant, ids["alpha"]))
        dave = accounts.create_user(username="dave", email="dave@example.com", password=TEST_PASSWORD)
        dave.groups.extend([Group(name="alpha-crew", attributes={}),
                            db.session.get(Group, ids["group"])])
        db.session.commit()
        dave_id = dave.id
    client = _alpha_admin(app)
    listed = html.unescape(client.get("/t/alpha/admin/users/").get_data(as_text=True))
    detail = html.unescape(client.get(f"/t/alpha/admin/users/{dave_id}").get_data(as_text=True))
    for page in (listed, detail):
        assert "alpha-crew" in page and "beta-secret-group" not in page
    client.post(f"/t/alpha/admin/users/{dave_id}/deactivate", data={"csrf_token": _token(client)})
    with app.app_context():
        assert db.session.get(User, dave_id).active is True


def test_a_blueprint_of_a_tenant_admin_cannot_change_an_instance_wide_flow(world):
    app, _ = world
    client = _alpha_admin(app)
    text = ("version: 1\nentries:\n- model: authentik_flows.flow\n"
            "  identifiers: {slug: default-enrollment-flow}\n  attrs: {name: Taken over}\n")
    page = client.get("/t/alpha/admin/flows/import").get_data(as_text=True)
    client.post("/t/alpha/admin/flows/import/apply", data={"csrf_token": csrf_from(page), "text": text})
    with app.app_context():
        flow = db.session.scalar(select(Flow).filter_by(slug="default-enrollment-flow"))
        assert flow.name != "Taken over" and flow.tenant_id is None


def test_instance_invitations_and_events_are_no_tenants_and_instance_pages_refuse_tenant_admins(world):
    """What belongs to no tenant (an instance invitation, an instance event) is as absent to a
    tenant admin as another tenant's: 404 by id on every invitation route, nowhere in lists,
    searches or exports, untouched by forged bulk ids; every /instance/ page answers 403."""
    from collections import namedtuple

    from portal.audit import Action, record_event

    Rule = namedtuple("Rule", "rule arguments defaults")
    app, ids = world
    secret = "instance-secret-invite"
    with app.app_context():
        root = db.session.scalar(select(User).filter_by(username="root"))
        flow = db.session.scalar(select(Flow).filter_by(slug="default-enrollment-flow"))
        invitation = service.create_invitation(name=secret, flow=flow, expires_at=None,
                                               created_by=root, instance=True, email="dan@example.com")
        record_event(Action.SIGN_IN_FAILED, object_type="user", object_repr="instance-secret-login",
                     commit=True)
        instance_id = invitation.id
    client = _alpha_admin(app)
    token = _token(client)
    tried = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("admin.") and "invitation_id" in rule.arguments:
            url = _url(rule, {**ids, "invitation": instance_id})
            for method in sorted(rule.methods & {"GET", "POST"}):
                data = {"csrf_token": token, "name": "hijacked"} if method == "POST" else None
                response = client.open(url, method=method, data=data)
                assert response.status_code in (403, 404), (method, url, response.status_code)
                assert secret not in response.get_data(as_text=True)
                tried += 1
        elif rule.rule.startswith("/instance/"):
            url = re.sub(r"<int:tenant_id>", str(ids["beta"]), rule.rule)
            url = _url(Rule(url, rule.arguments - {"tenant_id"}, rule.defaults),
                       {**ids, "invitation": instance_id})
            for method in sorted(rule.methods & {"GET", "POST"}):
                response = client.open(url, method=method, data={"csrf_token": token, "name": "x"}
                                       if method == "POST" else None)
                assert response.status_code == 403, (method, url, response.status_code)
                tried += 1
    assert tried >= 25
    for url in ("/t/alpha/admin/invitations/", "/t/alpha/admin/invitations/?q=instance",
                "/t/alpha/admin/invitations/links.csv", "/t/alpha/admin/audit/",
                "/t/alpha/admin/audit/?q=instance", "/t/alpha/admin/audit/export.csv",
                "/t/alpha/admin/"):
        page = html.unescape(client.get(url).get_data(as_text=True))
        assert secret not in page and "instance-secret-login" not in page, url
    for action in ("revoke", "delete"):
        client.post("/t/alpha/admin/invitations/bulk-action",
                    data={"csrf_token": token, "action": action, "ids": [str(instance_id)]})
    with app.app_context():
        kept = db.session.get(Invitation, instance_id)
        assert (kept.tenant_id, kept.revoked_at) == (None, None)
