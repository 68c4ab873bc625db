"""API tokens limited to one tenant: a token acts in its tenant only, with its owner's grants
there; another tenant's invitations, users, groups, roles, flows and audit events are as if they
did not exist (lists leave them out, ids give 404, forged bulk ids change nothing)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from portal import apitokens, tenants
from portal.auth import service as accounts
from portal.extensions import db
from portal.invitations import service
from portal.models import ApiToken, AuditEvent, Flow, Group, Invitation, Role, User, utcnow

from ..conftest import TEST_PASSWORD
from ..helpers import api_token, bearer

LEAD_PERMISSIONS = ["invitations:manage", "users:manage", "access:manage", "flows:manage",
                    "audit:view"]


@pytest.fixture
def two_tenants(app, admin):
    """The default tenant with its own group, role, flow, person and invitation; tenant "beta"
    with a lead holding every admin permission there (and nothing in the default tenant)."""
    with app.app_context():
        default = tenants.default_tenant()
        enrollment = db.session.scalar(select(Flow).filter_by(slug="default-enrollment-flow"))
        home = Group(name="home-staff", attributes={})
        home.roles.append(Role(name="home-role", permissions=["audit:view"]))
        dana = accounts.create_user(username="dana", email="dana@example.com", password=TEST_PASSWORD)
        dana.groups.append(home)
        db.session.add(Flow(name="Home only", slug="home-only", tenant_id=default.id))
        db.session.commit()
        home_invitation = service.create_invitation(
            name="home link", flow=enrollment, expires_at=utcnow() + timedelta(days=7),
            created_by=db.session.get(User, admin), groups=[home])
        beta = tenants.create_tenant(name="Beta", slug="beta")
        tenants.use_tenant(beta)
        lead = accounts.create_user(username="lead", email="lead@example.com", password=TEST_PASSWORD)
        lead.groups.append(Group(name="leads", attributes={}, roles=[
            Role(name="lead-role", permissions=LEAD_PERMISSIONS)]))
        db.session.add(Flow(name="Beta only", slug="beta-only", tenant_id=beta.id))
        db.session.commit()
        beta_invitation = service.create_invitation(
            name="beta link", flow=enrollment, expires_at=utcnow() + timedelta(days=7),
            created_by=lead)
        ids = {"home_invitation": home_invitation.id, "beta_invitation": beta_invitation.id,
               "home_group": home.id, "home_role": home.roles[0].id, "dana": dana.id,
               "lead": lead.id, "beta": beta.id, "default": default.id}
        tenants.use_tenant(None)
        return ids


def test_a_token_is_made_for_one_tenant_within_the_owners_grants_there(app, two_tenants):
    with app.app_context():
        lead = db.session.get(User, two_tenants["lead"])
        beta = db.session.get(type(tenants.default_tenant()), two_tenants["beta"])
        with pytest.raises(apitokens.TokenError) as refused:  # the default tenant: nothing held
            apitokens.issue(lead, name="x", scopes=["audit:view"],
                            expires_at=utcnow() + timedelta(days=1))
        assert refused.value.field == "scopes"
        token, _secret = apitokens.issue(lead, name="beta", scopes=["audit:view"], tenant=beta,
                                         expires_at=utcnow() + timedelta(days=1))
        assert token.tenant_id == two_tenants["beta"]
        assert apitokens.grants_of(token).scopes == {"audit:view": None}  # every namespace
        assert [t.slug for t in apitokens.token_tenants(lead)] == ["beta"]


def test_a_beta_token_never_sees_the_default_tenant(client, app, two_tenants):
    token = bearer(api_token(app, "lead", LEAD_PERMISSIONS, tenant="beta"))
    ids = two_tenants

    listed = client.get("/api/v1/invitations/", headers=token).get_json()
    assert [i["name"] for i in listed["items"]] == ["beta link"] and listed["total"] == 1
    assert client.get(f"/api/v1/invitations/{ids['home_invitation']}", headers=token).status_code == 404
    assert client.get(f"/api/v1/invitations/{ids['beta_invitation']}", headers=token).status_code == 200
    assert client.post(f"/api/v1/invitations/{ids['home_invitation']}/revoke",
                       headers=token).status_code == 404

    users = client.get("/api/v1/users/", headers=token).get_json()
    assert [u["username"] for u in users["items"]] == ["lead"] and users["total"] == 1
    assert client.get(f"/api/v1/users/{ids['dana']}", headers=token).status_code == 404
    assert client.post(f"/api/v1/users/{ids['dana']}/deactivate", headers=token).status_code == 404

    assert [g["name"] for g in client.get("/api/v1/groups/", headers=token).get_json()] == ["leads"]
    assert client.get(f"/api/v1/groups/{ids['home_group']}", headers=token).status_code == 404
    assert [r["name"] for r in client.get("/api/v1/roles/", headers=token).get_json()] == ["lead-role"]
    assert client.get(f"/api/v1/roles/{ids['home_role']}", headers=token).status_code == 404

    flows = [f["slug"] for f in client.get("/api/v1/flows/", headers=token).get_json()]
    assert "beta-only" in flows and "home-only" not in flows
    assert client.get("/api/v1/flows/home-only/blueprint", headers=token).status_code == 404

    events = client.get("/api/v1/audit-events/", headers=token).get_json()["items"]
    with app.app_context():
        home_events = set(db.session.scalars(select(AuditEvent.id).where(
            AuditEvent.tenant_id == ids["default"])))
    assert home_events and not {e["id"] for e in events} & home_events

    # A create with a group of the other tenant: that group does not exist here.
    made = client.post("/api/v1/invitations/", json={
        "name": "sneaky", "flow": "default-enrollment-flow", "groups": ["home-staff"]},
        headers=token)
    assert made.status_code == 422

    forged = client.post("/api/v1/invitations/bulk-action", json={
        "action": "delete", "ids": [ids["home_invitation"]]}, headers=token)
    assert forged.status_code == 200 and forged.get_json()["changed"] == 0
    revoked = client.post("/api/v1/invitations/bulk-action", json={
        "action": "revoke", "ids": [ids["home_invitation"]]}, headers=token)
    assert revoked.get_json()["changed"] == 0
    with app.app_context():
        home = db.session.get(Invitation, ids["home_invitation"])
        assert home is not None and home.revoked_at is None
        assert db.session.get(User, ids["dana"]).active is True


def test_a_superuser_token_acts_in_its_own_tenant_only(client, app, two_tenants):
    beta = bearer(api_token(app, "admin", tenant="beta", name="beta"))
    home = bearer(api_token(app, "admin", name="home"))
    assert [i["name"] for i in client.get("/api/v1/invitations/", headers=beta)
            .get_json()["items"]] == ["beta link"]
    assert [i["name"] for i in client.get("/api/v1/invitations/", headers=home)
            .get_json()["items"]] == ["home link"]
    made = client.post("/api/v1/invitations/", json={"name": "from a script",
                                                     "flow": "default-enrollment-flow"},
                       headers=beta)
    assert made.status_code == 201
    with app.app_context():
        invitation = db.session.get(Invitation, made.get_json()["id"])
        assert invitation.tenant_id == two_tenants["beta"]
        event = db.session.scalar(select(AuditEvent).filter_by(action="invitation.created",
                                                               object_id=invitation.id))
        assert event.tenant_id == two_tenants["beta"]


def test_owner_losing_grants_in_the_tenant_loses_them_on_the_token(client, app, two_tenants):
    token = bearer(api_token(app, "lead", ["audit:view"], tenant="beta"))
    assert client.get("/api/v1/audit-events/", headers=token).status_code == 200
    with app.app_context():
        lead = db.session.get(User, two_tenants["lead"])
        lead.groups.clear()
        db.session.commit()
        assert db.session.scalar(select(ApiToken.tenant_id).filter_by(user_id=lead.id)) == \
            two_tenants["beta"]
    assert client.get("/api/v1/audit-events/", headers=token).status_code == 403


# -- the tenant in the path (Kestra's /api/v1/{tenant}/...) ---------------------------------------


def test_a_token_acts_under_its_own_tenants_path_and_gets_404_under_another(client, app,
                                                                            two_tenants):
    token = bearer(api_token(app, "lead", LEAD_PERMISSIONS, tenant="beta"))
    ids = two_tenants
    listed = client.get("/api/v1/beta/invitations/", headers=token).get_json()
    assert [i["name"] for i in listed["items"]] == ["beta link"] and listed["total"] == 1
    made = client.post("/api/v1/beta/invitations/", json={"name": "by path"}, headers=token)
    assert made.status_code == 201
    for path in ("invitations/", f"invitations/{ids['home_invitation']}", "users/", "groups/",
                 "roles/", "flows/", "audit-events/"):
        refused = client.get(f"/api/v1/default/{path}", headers=token)
        assert refused.status_code == 404, path
        assert refused.mimetype == "application/problem+json"
    assert client.post("/api/v1/default/invitations/", json={"name": "sneaky"},
                       headers=token).status_code == 404
    assert client.delete(f"/api/v1/default/invitations/{ids['home_invitation']}",
                         headers=token).status_code == 404
    assert client.get("/api/v1/nowhere/invitations/", headers=token).status_code == 404
    with app.app_context():
        assert db.session.get(Invitation, ids["home_invitation"]) is not None
        names = sorted(db.session.scalars(select(Invitation.name).where(
            Invitation.tenant_id == ids["beta"])))
    assert names == ["beta link", "by path"]


def test_a_superadmin_token_acts_in_any_tenant_by_path(client, app, two_tenants):
    home = bearer(api_token(app, "admin", name="home"))
    assert [i["name"] for i in client.get("/api/v1/beta/invitations/", headers=home)
            .get_json()["items"]] == ["beta link"]
    assert [i["name"] for i in client.get("/api/v1/invitations/", headers=home)
            .get_json()["items"]] == ["home link"]
    made = client.post("/api/v1/beta/groups/", json={"name": "beta-new"}, headers=home)
    assert made.status_code == 201
    assert [g["name"] for g in client.get("/api/v1/beta/groups/", headers=home).get_json()] == [
        "beta-new", "leads"]
    with app.app_context():
        group = db.session.get(Group, made.get_json()["id"])
        event = db.session.scalar(select(AuditEvent).filter_by(action="group.saved",
                                                               object_id=group.id))
        assert (group.tenant_id, event.tenant_id, event.detail["api_token"]["name"]) == (
            two_tenants["beta"], two_tenants["beta"], "home")
    # Scoped to a permission, a superuser's token is not a superadmin's: its tenant only.
    scoped = bearer(api_token(app, "admin", ("invitations:manage",), name="scoped"))
    assert client.get("/api/v1/beta/invitations/", headers=scoped).status_code == 404
    assert client.get("/api/v1/default/invitations/", headers=scoped).status_code == 200


def test_a_browser_session_reads_by_path_only_in_its_tenants(app, two_tenants):
    from ..conftest import sign_in

    client = app.test_client()
    sign_in(client, "lead")
    assert client.get("/api/v1/beta/groups/").status_code == 200
    assert client.get("/api/v1/default/groups/").status_code == 404
