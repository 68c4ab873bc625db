"""/api/v1 users, groups, roles, flows, audit events."""

from __future__ import annotations

from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, Group, Role

from ..helpers import api_token, bearer


def test_users_list_get_create_memberships(client, app, admin):
    with app.app_context():
        db.session.add(Group(name="staff", attributes={}))
        db.session.commit()
    token = bearer(api_token(app, "admin", ("users:manage",)))
    made = client.post("/api/v1/users/", json={"username": "sam", "email": "sam@example.com",
                                               "groups": ["staff"]}, headers=token)
    assert made.status_code == 201
    data = made.get_json()
    assert data["set_password_link"].startswith("http://portal.test/auth/")
    assert client.post("/api/v1/users/", json={"username": "SAM", "email": "s2@example.com"},
                       headers=token).status_code == 409
    listed = client.get("/api/v1/users/", query_string={"q": "sam"}, headers=token).get_json()
    assert [u["username"] for u in listed["items"]] == ["sam"] and listed["total"] == 1
    got = client.get(f"/api/v1/users/{data['id']}/memberships", headers=token).get_json()
    assert [g["name"] for g in got["groups"]] == ["staff"] and got["invitation_uses"] == []
    assert client.post(f"/api/v1/users/{admin}/deactivate", headers=token).status_code == 403


def test_groups_and_roles(client, app, admin):
    with app.app_context():
        group = Group(name="sales", attributes={})
        group.roles.append(Role(name="sales-inviter", permissions=["invitations:manage"],
                                namespaces=["sales"]))
        db.session.add(group)
        db.session.commit()
    token = bearer(api_token(app, "admin"))
    groups = client.get("/api/v1/groups/", headers=token).get_json()
    assert [(g["name"], g["roles"], g["assignable"]) for g in groups] == [
        ("sales", ["sales-inviter"], True)]
    roles = client.get("/api/v1/roles/", headers=token).get_json()
    assert roles[0]["namespaces"] == ["sales"] and roles[0]["groups"][0]["name"] == "sales"
    assert client.get("/api/v1/roles/", headers=bearer(api_token(
        app, "admin", ("invitations:manage",), name="narrow"))).status_code == 403


def test_flows_export_and_import_dry_run_then_apply(client, app, admin):
    token = bearer(api_token(app, "admin", ("flows:manage",)))
    flows = client.get("/api/v1/flows/", headers=token).get_json()
    assert "default-enrollment-flow" in [f["slug"] for f in flows]
    exported = client.get("/api/v1/flows/default-enrollment-flow/blueprint", headers=token).get_json()
    renamed = exported["yaml"].replace("default-enrollment-flow", "copied-enrollment")
    preview = client.post("/api/v1/flows/import", json={"blueprint": renamed}, headers=token)
    assert preview.status_code == 200 and preview.get_json()["applied"] is False
    listed = client.get("/api/v1/flows/", headers=token).get_json()
    assert "copied-enrollment" not in [f["slug"] for f in listed]
    applied = client.post("/api/v1/flows/import", json={"blueprint": renamed, "dry_run": False},
                          headers=token).get_json()
    assert applied["applied"] is True and "copied-enrollment" in applied["flows"]
    bad = client.post("/api/v1/flows/import", json={"blueprint": "version: 2\nentries: []"},
                      headers=token)
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "blueprint"
    with app.app_context():
        event = db.session.scalar(select(AuditEvent).filter_by(action="flow.imported"))
        assert event.detail["api_token"]["name"] == "script"


def test_audit_events_filter(client, app, admin):
    token = bearer(api_token(app, "admin", ("audit:view", "invitations:manage")))
    client.post("/api/v1/invitations/", json={"name": "x"}, headers=token)
    found = client.get("/api/v1/audit-events/", query_string={"action": "invitation"},
                       headers=token).get_json()
    assert [e["action"] for e in found["items"]] == ["invitation.created"]
    assert found["items"][0]["detail"]["api_token"]["name"] == "script"
    assert client.get("/api/v1/audit-events/", query_string={"since": "not a date"},
                      headers=token).status_code == 422


def test_openapi_is_3_1_and_the_docs_page_serves_its_own_assets(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"] == "3.1.0"
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    page = client.get("/api/v1/docs").get_data(as_text=True)
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page and "//cdn" not in page
    with client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js") as asset:
        assert asset.status_code == 200


def test_single_reads_and_their_404s(client, app, admin):
    token = bearer(api_token(app, "admin"))
    assert client.get(f"/api/v1/users/{admin}", headers=token).get_json()["superuser"] is True
    assert client.get("/api/v1/users/999", headers=token).status_code == 404
    assert client.get("/api/v1/groups/999", headers=token).status_code == 404
    assert client.get("/api/v1/roles/999", headers=token).status_code == 404
    assert client.get("/api/v1/flows/nope/blueprint", headers=token).status_code == 404
    made = client.post("/api/v1/invitations/", json={"name": "x"}, headers=token).get_json()
    retry = client.post(f"/api/v1/invitations/{made['id']}/emails/999/retry", headers=token)
    assert retry.status_code == 404 and retry.mimetype == "application/problem+json"
