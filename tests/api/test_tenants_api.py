"""/api/v1/tenants: superadmins list, get, create, rename, deactivate and delete tenants through
the tenant commands of the instance pages; anyone else gets 403."""

from __future__ import annotations

from sqlalchemy import select

from portal.extensions import db
from portal.models import ApiToken, AuditEvent, Group, Tenant

from ..helpers import api_token, bearer, make_member

PROBLEM = "application/problem+json"


def test_a_superadmin_manages_tenants(client, app, admin):
    token = bearer(api_token(app, "admin"))
    assert [(t["slug"], t["default"]) for t in client.get("/api/v1/tenants/", headers=token)
            .get_json()] == [("default", True)]
    made = client.post("/api/v1/tenants/", json={"name": "Team A", "slug": "team-a"}, headers=token)
    assert made.status_code == 201
    tenant_id = made.get_json()["id"]
    clash = client.post("/api/v1/tenants/", json={"name": "Again", "slug": "team-a"}, headers=token)
    assert clash.status_code == 422 and clash.mimetype == PROBLEM
    assert clash.get_json()["errors"][0]["field"] == "slug"
    bad = client.post("/api/v1/tenants/", json={"name": "Bad", "slug": "Not A Slug!"}, headers=token)
    assert bad.status_code == 422

    in_it = api_token(app, "admin", name="team token", tenant="team-a")
    renamed = client.patch(f"/api/v1/tenants/{tenant_id}", json={"name": "Team Alpha"},
                           headers=token).get_json()
    assert (renamed["name"], renamed["slug"], renamed["active"]) == ("Team Alpha", "team-a", True)
    paused = client.patch(f"/api/v1/tenants/{tenant_id}", json={"active": False},
                          headers=token).get_json()
    assert paused["active"] is False and paused["name"] == "Team Alpha"
    assert client.get(f"/api/v1/tenants/{tenant_id}", headers=token).get_json()["active"] is False

    with app.app_context():
        db.session.add(Group(name="crew", attributes={}, tenant_id=tenant_id))
        db.session.commit()
        assert db.session.scalars(select(AuditEvent.action).where(
            AuditEvent.action.like("tenant.%")).order_by(AuditEvent.id)).all() == [
            "tenant.created", "tenant.updated", "tenant.updated"]
    gone = client.delete(f"/api/v1/tenants/{tenant_id}", headers=token)
    assert gone.status_code == 200
    assert gone.get_json()["removed"]["groups"] == 1
    assert client.get(f"/api/v1/tenants/{tenant_id}", headers=token).status_code == 404
    assert client.get("/api/v1/me/", headers=bearer(in_it)).status_code == 401  # its token went too
    with app.app_context():
        assert db.session.get(Tenant, tenant_id) is None
        assert db.session.scalar(select(ApiToken).filter_by(name="team token")) is None
        actions = db.session.scalars(select(AuditEvent.action).where(
            AuditEvent.action.like("tenant.%")).order_by(AuditEvent.id)).all()
        assert actions == ["tenant.deleted"]  # its own events went with it (kept in the default)
        default_id = db.session.scalar(select(Tenant.id).filter_by(slug="default"))
    refused = client.delete(f"/api/v1/tenants/{default_id}", headers=token)
    assert refused.status_code == 409 and refused.mimetype == PROBLEM
    assert client.get("/api/v1/tenants/99999", headers=token).status_code == 404


def test_tenants_are_for_superadmins_only(client, app, admin):
    make_member(app, "ira", permissions=["invitations:manage", "users:manage", "access:manage"])
    member = bearer(api_token(app, "ira", ["access:manage"]))
    narrow = bearer(api_token(app, "admin", ["audit:view"], name="narrow"))
    for token in (member, narrow):
        assert client.get("/api/v1/tenants/", headers=token).status_code == 403
        refused = client.post("/api/v1/tenants/", json={"name": "X", "slug": "x"}, headers=token)
        assert refused.status_code == 403 and refused.mimetype == PROBLEM
    with app.app_context():
        assert db.session.scalars(select(Tenant.slug)).all() == ["default"]
