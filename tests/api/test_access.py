"""/api/v1/groups and /api/v1/roles: create, change, delete through access.service (the pages'
commands), with the privilege ceiling and audit events that name the token."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuditEvent, Group, Role

from ..helpers import api_token, bearer, make_member


@pytest.fixture
def editor(app, admin):
    return bearer(api_token(app, "admin", ("access:manage", "invitations:manage"),
                              name="access-script"))


def test_create_change_delete_a_role_and_a_group(client, app, editor):
    group = client.post("/api/v1/groups/", json={"name": "sales"}, headers=editor)
    assert group.status_code == 201, group.get_json()
    role = client.post("/api/v1/roles/", json={
        "name": "sales-inviter", "permissions": ["invitations:manage"],
        "namespaces": ["sales", "sales"], "groups": ["Sales"]}, headers=editor)
    assert role.status_code == 201, role.get_json()
    data = role.get_json()
    assert (data["namespaces"], [g["name"] for g in data["groups"]]) == (["sales"], ["sales"])
    group_id, role_id = group.get_json()["id"], data["id"]
    got = client.get(f"/api/v1/groups/{group_id}", headers=editor).get_json()
    assert got["roles"] == ["sales-inviter"]

    renamed = client.patch(f"/api/v1/roles/{role_id}", json={"description": "EMEA"},
                           headers=editor).get_json()
    assert (renamed["description"], renamed["permissions"]) == ("EMEA", ["invitations:manage"])
    unbound = client.patch(f"/api/v1/groups/{group_id}", json={"name": "sales-team", "roles": []},
                           headers=editor).get_json()
    assert (unbound["name"], unbound["roles"]) == ("sales-team", [])

    assert client.delete(f"/api/v1/roles/{role_id}", headers=editor).status_code == 204
    assert client.delete(f"/api/v1/groups/{group_id}", headers=editor).status_code == 204
    assert client.get(f"/api/v1/groups/{group_id}", headers=editor).status_code == 404
    with app.app_context():
        events = db.session.execute(select(AuditEvent.action, AuditEvent.detail)
                                    .where(AuditEvent.object_type.in_(["group", "role"]))
                                    .order_by(AuditEvent.id)).all()
    assert [a for a, _ in events] == ["group.saved", "role.saved", "role.saved", "group.saved",
                                      "role.deleted", "group.deleted"]
    assert {d["api_token"]["name"] for _, d in events} == {"access-script"}


def test_names_and_choices_are_checked(client, app, editor):
    client.post("/api/v1/groups/", json={"name": "staff"}, headers=editor)
    clash = client.post("/api/v1/groups/", json={"name": "staff"}, headers=editor)
    assert clash.status_code == 409 and clash.get_json()["errors"][0]["field"] == "name"
    unknown = client.post("/api/v1/roles/", json={"name": "r", "permissions": ["audit:view"],
                                                  "groups": ["staff", "nope"]}, headers=editor)
    assert unknown.status_code == 422 and unknown.get_json()["errors"][0]["field"] == "groups.1"
    bad = client.post("/api/v1/roles/", json={"name": "r", "permissions": ["root"]}, headers=editor)
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "permissions.0"
    with app.app_context():
        assert db.session.scalar(select(func.count(Role.id))) == 0


def test_the_ceiling_refuses_what_the_token_does_not_hold(client, app, admin):
    """An access admin (access:manage and invitations:manage) may make a role within that, never
    one beyond it, nor bind a role onto a group beyond them, nor touch a superuser group;
    refusals are 422s naming the field, and nothing changes."""
    make_member(app, "ann", permissions=["access:manage", "invitations:manage"])
    with app.app_context():
        db.session.add(Group(name="admins", attributes={}, is_superuser=True))
        power = Group(name="power", attributes={})
        power.roles.append(Role(name="auditing", permissions=["audit:view"]))
        db.session.add(power)
        db.session.commit()
        power_id = power.id
        admins_id = db.session.scalar(select(Group.id).filter_by(name="admins"))
    ann = bearer(api_token(app, "ann", ("access:manage", "invitations:manage")))
    beyond = client.post("/api/v1/roles/", json={"name": "audit", "permissions": ["audit:view"]},
                         headers=ann)
    assert beyond.status_code == 422 and beyond.get_json()["errors"][0]["field"] == "permissions"
    within = client.post("/api/v1/roles/", json={"name": "inviter",
                                                 "permissions": ["invitations:manage"]}, headers=ann)
    assert within.status_code == 201
    onto = client.patch(f"/api/v1/roles/{within.get_json()['id']}", json={"groups": ["power"]},
                        headers=ann)
    assert onto.status_code == 422 and "power" in onto.get_json()["errors"][0]["message"]
    bind = client.patch(f"/api/v1/groups/{power_id}", json={"roles": ["inviter"]}, headers=ann)
    assert bind.status_code == 422
    superuser = client.post("/api/v1/groups/", json={"name": "root", "superuser": True}, headers=ann)
    assert superuser.status_code == 422
    assert superuser.get_json()["errors"][0] == {
        "field": "superuser", "location": "json",
        "message": "Only a superuser can make a superuser group."}
    assert client.delete(f"/api/v1/groups/{admins_id}", headers=ann).status_code == 422
    with app.app_context():
        assert sorted(db.session.scalars(select(Group.name))) == ["admins", "ann-group", "power"]
        assert [r.name for r in db.session.get(Group, power_id).roles] == ["auditing"]


def test_changes_need_access_manage_everywhere(client, app, admin):
    narrow = bearer(api_token(app, "admin", ("invitations:manage",)))
    assert client.post("/api/v1/groups/", json={"name": "x"}, headers=narrow).status_code == 403
    make_member(app, "sal", permissions=["access:manage"], namespaces=["sales"])
    sal = bearer(api_token(app, "sal", ("access:manage",)))
    assert client.post("/api/v1/roles/", json={"name": "x", "permissions": ["access:manage"]},
                       headers=sal).status_code == 403
