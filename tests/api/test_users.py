"""/api/v1/users: change (name, address, groups in this tenant) and remove from this tenant,
through auth.service with the ceiling (account_change_refusal) of the admin's user pages."""

from __future__ import annotations

from sqlalchemy import select

from portal import tenants
from portal.auth import service as accounts
from portal.extensions import db
from portal.models import AuditEvent, Group, MemberRole, Role, User, tenant_members

from ..conftest import TEST_PASSWORD
from ..helpers import api_token, bearer, make_member


def _sam(app) -> int:
    with app.app_context():
        db.session.add_all([Group(name="staff", attributes={}), Group(name="sales", attributes={})])
        sam = accounts.create_user(username="sam", email="sam@example.com", password=TEST_PASSWORD)
        tenants.add_member(sam)
        sam.verified_email = sam.email
        db.session.commit()
        return sam.id


def test_change_name_address_and_groups(client, app, admin):
    sam = _sam(app)
    token = bearer(api_token(app, "admin", ("users:manage",), name="hr-sync"))
    changed = client.patch(f"/api/v1/users/{sam}", json={
        "name": "Sam Smith", "email": "sam.smith@example.com", "groups": ["staff", "Sales"]},
        headers=token)
    assert changed.status_code == 200, changed.get_json()
    data = changed.get_json()
    assert (data["name"], data["email"], [g["name"] for g in data["groups"]]) == (
        "Sam Smith", "sam.smith@example.com", ["sales", "staff"])
    kept = client.patch(f"/api/v1/users/{sam}", json={"groups": ["staff"]}, headers=token).get_json()
    assert (kept["name"], [g["name"] for g in kept["groups"]]) == ("Sam Smith", ["staff"])
    with app.app_context():
        user = db.session.get(User, sam)
        assert accounts.verified_email(user) is None  # a new address needs a new proof
        events = db.session.scalars(select(AuditEvent).filter_by(action="user.updated",
                                                                 object_id=sam)
                                    .order_by(AuditEvent.id)).all()
    assert [e.detail["groups"] for e in events] == [["sales", "staff"], ["staff"]]
    assert events[0].detail["email"] == "sam.smith@example.com"
    assert {e.detail["api_token"]["name"] for e in events} == {"hr-sync"}


def test_bad_changes_are_field_errors(client, app, admin):
    sam = _sam(app)
    token = bearer(api_token(app, "admin", ("users:manage",)))
    unknown = client.patch(f"/api/v1/users/{sam}", json={"groups": ["nope"]}, headers=token)
    assert unknown.status_code == 422 and unknown.get_json()["errors"][0]["field"] == "groups"
    bad = client.patch(f"/api/v1/users/{sam}", json={"email": "not-an-address"}, headers=token)
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "email"
    with app.app_context():
        other = accounts.create_user(username="x@example.com", email="x@example.com",
                                     password=TEST_PASSWORD)
        tenants.add_member(other)
        db.session.commit()
        other_id = other.id
    mismatch = client.patch(f"/api/v1/users/{other_id}", json={"email": "y@example.com"},
                            headers=token)
    assert mismatch.status_code == 422 and mismatch.get_json()["errors"][0]["field"] == "email"


def test_remove_from_the_tenant_keeps_the_account(client, app, admin):
    sam = _sam(app)
    with app.app_context():
        user = db.session.get(User, sam)
        user.groups.append(db.session.scalar(select(Group).filter_by(name="staff")))
        role = Role(name="auditor", permissions=["audit:view"])
        db.session.add(role)
        db.session.flush()
        db.session.add(MemberRole(tenant_id=tenants.default_tenant().id, user_id=sam,
                                  role_id=role.id, namespaces=[]))
        db.session.commit()
    token = bearer(api_token(app, "admin", ("users:manage",)))
    assert client.delete(f"/api/v1/users/{admin}", headers=token).status_code == 403  # yourself
    assert client.delete(f"/api/v1/users/{sam}", headers=token).status_code == 204
    assert client.get(f"/api/v1/users/{sam}", headers=token).status_code == 404
    assert client.delete(f"/api/v1/users/{sam}", headers=token).status_code == 404
    with app.app_context():
        user = db.session.get(User, sam)
        assert user is not None and user.active and user.groups == []
        assert db.session.scalar(select(MemberRole).filter_by(user_id=sam)) is None
        assert db.session.scalar(select(tenant_members.c.user_id).where(
            tenant_members.c.user_id == sam)) is None
        event = db.session.scalar(select(AuditEvent).filter_by(action="user.removed_from_tenant"))
        assert event.object_id == sam and event.detail["groups"] == ["staff"]


def test_the_ceiling_protects_stronger_accounts(client, app, admin):
    """A users admin may not change or remove an account in a group beyond what they may give,
    nor give such a group; refused with 403 and nothing changes."""
    make_member(app, "una", permissions=["users:manage"])
    make_member(app, "boss", permissions=["users:manage", "access:manage"])
    with app.app_context():
        boss = db.session.scalar(select(User).filter_by(username="boss"))
        for user in (boss, db.session.scalar(select(User).filter_by(username="una"))):
            tenants.add_member(user)
        db.session.commit()
        boss_id = boss.id
    sam = _sam(app)
    una = bearer(api_token(app, "una", ("users:manage",)))
    for refused in (client.patch(f"/api/v1/users/{boss_id}", json={"name": "Boss?"}, headers=una),
                    client.delete(f"/api/v1/users/{boss_id}", headers=una),
                    client.patch(f"/api/v1/users/{sam}", json={"groups": ["boss-group"]},
                                 headers=una)):
        assert refused.status_code == 403
    assert "boss-group" in client.delete(f"/api/v1/users/{boss_id}", headers=una).get_json()["detail"]
    with app.app_context():
        assert db.session.get(User, boss_id).name == ""
        assert db.session.get(User, sam).groups == []
    assert client.patch(f"/api/v1/users/{sam}", json={"groups": ["staff"]},
                        headers=una).status_code == 200
