"""/api/v1/invitations: every action, the same results and audit trail as the pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal.audit import Action
from portal.extensions import db
from portal.invitations import service
from portal.models import AuditEvent, Group, Invitation

from ..helpers import api_token, bearer, make_member

API = "/api/v1/invitations/"


@pytest.fixture
def token(app, admin):
    with app.app_context():
        db.session.add(Group(name="staff", attributes={}))
        db.session.commit()
    return bearer(api_token(app, "admin", ("invitations:manage",)))


def future(days=5) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def create(client, token, **body):
    body.setdefault("name", "Team link")
    return client.post(API, json=body, headers=token)


def test_create_a_link_then_get_it_with_its_link(client, token, app):
    made = create(client, token, groups=["staff"], expires_at=future())
    assert made.status_code == 201, made.get_json()
    data = made.get_json()
    assert data["status"] == "pending" and [g["name"] for g in data["groups"]] == ["staff"]
    assert data["link"].startswith("http://portal.test/if/flow/default-enrollment-flow/?itoken=")
    got = client.get(f"{API}{data['id']}", headers=token).get_json()
    assert got["link"] == data["link"]
    with app.app_context():
        event = db.session.scalar(select(AuditEvent).filter_by(action=Action.INVITATION_CREATED))
        assert event.actor_name == "admin" and event.detail["api_token"]["name"] == "script"


def test_recipient_bound_invitation_is_single_use_for_that_address(client, token):
    data = create(client, token, name="", email="Nia@Example.com").get_json()
    assert data["email"] == "Nia@example.com" and data["single_use"] is True
    assert data["emailed"] is False  # no mail server in tests


def test_list_filters_sorts_and_pages(client, token, make_invitation):
    for name in ("bravo", "alpha", "charlie"):
        create(client, token, name=name)
    revoked = create(client, token, name="delta").get_json()["id"]
    client.post(f"{API}{revoked}/revoke", headers=token)
    page = client.get(API, query_string={"sort": "name", "per_page": 2}, headers=token).get_json()
    assert [i["name"] for i in page["items"]] == ["alpha", "bravo"] and page["total"] == 4
    pending = client.get(API, query_string={"status": "pending"}, headers=token).get_json()
    assert pending["total"] == 3
    found = client.get(API, query_string={"q": "arl"}, headers=token).get_json()
    assert [i["name"] for i in found["items"]] == ["charlie"]


def test_update_extend_resend_revoke_delete(client, token, app):
    data = create(client, token).get_json()
    url = f"{API}{data['id']}"
    assert client.patch(url, json={"name": "Renamed"}, headers=token).get_json()["name"] == "Renamed"
    later = future(20)
    extended = client.post(f"{url}/extend", json={"expires_at": later}, headers=token).get_json()
    assert extended["invitation"]["link"] == data["link"]
    resent = client.post(f"{url}/resend", json={}, headers=token).get_json()
    assert resent["invitation"]["link"] != data["link"]
    assert client.post(f"{url}/revoke", headers=token).get_json()["invitation"]["status"] == "revoked"
    again = client.post(f"{url}/resend", json={}, headers=token)
    assert again.status_code == 409 and again.mimetype == "application/problem+json"
    assert client.delete(url, headers=token).status_code == 204
    assert client.get(url, headers=token).status_code == 404
    with app.app_context():
        actions = [e.action for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    # The rename is recorded by the service every edit goes through (invitation.updated).
    assert actions == [Action.API_TOKEN_CREATED, Action.INVITATION_CREATED, Action.INVITATION_UPDATED,
                       Action.INVITATION_EXTENDED, Action.INVITATION_RESENT,
                       Action.INVITATION_REVOKED, Action.INVITATION_DELETED]


def test_expiry_in_the_past_is_a_field_error(client, token):
    response = create(client, token, expires_at="2001-01-01T00:00:00Z")
    assert response.status_code == 422
    assert response.get_json()["errors"] == [
        {"field": "expires_at", "location": "json", "message": "Choose a moment in the future."}]


def test_send_email_needs_an_address_and_a_mail_server(client, token):
    link = create(client, token).get_json()["id"]
    assert client.post(f"{API}{link}/send-email", headers=token).status_code == 409


def test_bulk_create_reports_each_row(client, token, app):
    body = {"rows": [{"email": "a@example.com"}, {"email": "not-an-address"},
                     {"email": "A@example.com"}, {"email": "admin@example.com"},
                     {"email": "b@example.com", "groups": ["nope"]}]}
    preview = client.post(f"{API}bulk", json={**body, "dry_run": True}, headers=token).get_json()
    assert (preview["created"], preview["skipped"]) == (0, 3)
    wider = bearer(api_token(app, "admin", ("invitations:manage", "users:manage")))
    seen = client.post(f"{API}bulk", json={**body, "dry_run": True}, headers=wider).get_json()
    assert [r["note"] for r in seen["rows"]] == [
        None, None, None, "Already a member of this tenant: will be asked to join", None]
    done = client.post(f"{API}bulk", json=body, headers=token).get_json()
    assert (done["created"], done["skipped"]) == (2, 3)
    problems = [r["problem"] for r in done["rows"]]
    assert problems[0] is None and problems[2] == "Duplicate of line 1"
    assert problems[4].startswith("Unknown group")
    # An address with an account is invited (its owner accepts); a token without users:manage
    # is not told which addresses have one.
    assert problems[3] is None and done["rows"][3]["ok"] is True
    assert [r["note"] for r in done["rows"]] == [None] * 5

    assert done["rows"][0]["invitation_id"] is not None


def test_bulk_action_and_uses(client, token):
    ids = [create(client, token, name=f"n{i}").get_json()["id"] for i in range(3)]
    result = client.post(f"{API}bulk-action", json={"action": "revoke", "ids": ids},
                         headers=token).get_json()
    assert result == {"action": "revoke", "changed": 3, "left_unchanged": []}
    assert client.get(f"{API}{ids[0]}/uses", headers=token).get_json() == []
    links = client.get(f"{API}links", headers=token).get_json()
    assert links == []


def test_ceiling_holds_for_a_namespace_admin(client, app, admin):
    """An invitations admin may not give a group that grants more than they hold: 403 naming it,
    exactly as on the pages."""
    make_member(app, "nina", permissions=["invitations:manage"])
    with app.app_context():
        from portal.models import Role

        power = Group(name="powerful", attributes={})
        power.roles.append(Role(name="users-role", permissions=["users:manage"], namespaces=[]))
        db.session.add(power)
        db.session.commit()
    token = bearer(api_token(app, "nina", ("invitations:manage",)))
    refused = create(client, token, groups=["powerful"])
    assert refused.status_code == 403 and "powerful" in refused.get_json()["detail"]
    with app.app_context():
        assert db.session.scalar(select(Invitation.id)) is None


def test_read_only_invitation_shows_why_and_no_link(client, app, admin, make_invitation):
    make_member(app, "nina", permissions=["invitations:manage"])
    with app.app_context():
        db.session.add(Group(name="admins", attributes={}, is_superuser=True))
        db.session.commit()
        group = db.session.scalar(select(Group).filter_by(name="admins"))
        invitation_id, _link = make_invitation(name="for admins")
        invitation = db.session.get(Invitation, invitation_id)
        invitation.groups.append(group)
        db.session.commit()
    token = bearer(api_token(app, "nina", ("invitations:manage",)))
    got = client.get(f"{API}{invitation_id}", headers=token).get_json()
    assert got["link"] is None and "admins" in got["read_only"]
    assert client.delete(f"{API}{invitation_id}", headers=token).status_code == 403
    with app.app_context():
        assert service.status_of(db.session.get(Invitation, invitation_id)).key == "pending"


# -- roles attached directly (Kestra's invitation body) ------------------------------------------


@pytest.fixture
def roles(app, token):
    """A role limited to namespace "sales", one for every flow, and a token that may give both
    (the ceiling counts the token's scopes: invitations:manage alone may not give audit:view)."""
    from portal.models import Role

    with app.app_context():
        db.session.add_all([Role(name="sales-inviter", permissions=["invitations:manage"],
                                 namespaces=["sales"]),
                            Role(name="auditor", permissions=["audit:view"], namespaces=[])])
        db.session.commit()
    return bearer(api_token(app, "admin", ("invitations:manage", "audit:view"), name="giver"))


def test_create_with_a_group_and_a_namespace_limited_role(client, roles, app):
    token = roles
    made = create(client, token, groups=["staff"], roles=[
        {"role": "sales-inviter", "namespaces": ["sales.emea"]}, {"role": "Auditor"}])
    assert made.status_code == 201, made.get_json()
    data = made.get_json()
    assert [(r["name"], r["namespaces"]) for r in data["roles"]] == [
        ("auditor", []), ("sales-inviter", ["sales.emea"])]
    got = client.get(f"{API}{data['id']}", headers=token).get_json()
    assert got["roles"] == data["roles"] and [g["name"] for g in got["groups"]] == ["staff"]
    listed = client.get(API, headers=token).get_json()["items"]
    assert [r["name"] for r in listed[0]["roles"]] == ["auditor", "sales-inviter"]
    with app.app_context():
        invitation = db.session.get(Invitation, data["id"])
        assert sorted((d.role.name, d.namespaces) for d in invitation.direct_roles) == [
            ("auditor", []), ("sales-inviter", ["sales.emea"])]


def test_update_replaces_the_roles_and_keeps_them_when_left_out(client, roles, app):
    token = roles
    made = create(client, token, roles=[{"role": "sales-inviter"}]).get_json()
    renamed = client.patch(f"{API}{made['id']}", json={"name": "Renamed"}, headers=token)
    assert [r["name"] for r in renamed.get_json()["roles"]] == ["sales-inviter"]
    changed = client.patch(f"{API}{made['id']}", json={"roles": [
        {"role": "sales-inviter", "namespaces": ["sales-eu"]}, {"role": "auditor"}]}, headers=token)
    assert changed.status_code == 200, changed.get_json()
    assert [(r["name"], r["namespaces"]) for r in changed.get_json()["roles"]] == [
        ("auditor", []), ("sales-inviter", ["sales-eu"])]
    cleared = client.patch(f"{API}{made['id']}", json={"roles": []}, headers=token)
    assert cleared.get_json()["roles"] == []


def test_bad_roles_are_field_errors_on_their_own_entry(client, roles, app):
    token = roles
    refused = create(client, token, roles=[{"role": "auditor"}, {"role": "nope"}])
    assert refused.status_code == 422
    assert refused.mimetype == "application/problem+json"
    assert refused.get_json()["errors"] == [
        {"field": "roles.1.role", "location": "json", "message": "There is no role 'nope'."}]
    outside = create(client, token, roles=[{"role": "sales-inviter", "namespaces": ["hr"]}])
    assert outside.status_code == 422
    assert [e["field"] for e in outside.get_json()["errors"]] == ["roles.0"]
    assert outside.get_json()["errors"][0]["message"] == (
        "“hr” is outside the role's own namespaces (sales); a limit can only narrow the role.")
    twice = create(client, token, roles=[{"role": "auditor"}, {"role": "AUDITOR"}])
    assert [e["field"] for e in twice.get_json()["errors"]] == ["roles.1.role"]
    with app.app_context():
        assert db.session.scalar(select(Invitation.id)) is None


def test_a_role_beyond_the_ceiling_is_a_422_as_the_form_refuses_it(client, app, roles):
    """A sales inviter may give the sales role for sales.emea, not the auditor role (they do
    not hold audit:view) and not the sales role for a namespace beyond theirs."""
    from portal.models import Flow

    make_member(app, "nina", permissions=["invitations:manage"], namespaces=["sales"])
    with app.app_context():
        db.session.add(Flow(name="Sales EMEA", slug="sales.emea", designation="enrollment"))
        db.session.commit()
    nina = bearer(api_token(app, "nina", ("invitations:manage",)))
    body = {"name": "emea", "flow": "sales.emea"}
    refused = create(client, nina, **body, roles=[{"role": "auditor"}])
    assert refused.status_code == 422
    assert [e["field"] for e in refused.get_json()["errors"]] == ["roles.0"]
    assert "grants more than you hold" in refused.get_json()["errors"][0]["message"]
    made = create(client, nina, **body, roles=[{"role": "sales-inviter", "namespaces": ["sales.emea"]}])
    assert made.status_code == 201, made.get_json()
    widened = client.patch(f"{API}{made.get_json()['id']}", json={"roles": [{"role": "auditor"}]},
                           headers=nina)
    assert widened.status_code == 422
    bulk = client.post(f"{API}bulk", json={"flow": "sales.emea", "rows": [{"email": "x@example.com"}],
                                           "roles": [{"role": "auditor"}]}, headers=nina)
    assert bulk.status_code == 422 and bulk.get_json()["errors"][0]["field"] == "roles.0"
    with app.app_context():
        assert db.session.scalar(select(func.count(Invitation.id))) == 1


def test_bulk_create_attaches_the_roles_to_every_row(client, roles, app):
    token = roles
    done = client.post(f"{API}bulk", json={"rows": [{"email": "a@example.com"},
                                                    {"email": "b@example.com"}],
                                           "groups": ["staff"],
                                           "roles": [{"role": "sales-inviter",
                                                      "namespaces": ["sales"]}]}, headers=token)
    assert done.get_json()["created"] == 2
    with app.app_context():
        attached = sorted((i.email, [(d.role.name, d.namespaces) for d in i.direct_roles])
                          for i in db.session.scalars(select(Invitation)))
    assert attached == [("a@example.com", [("sales-inviter", ["sales"])]),
                        ("b@example.com", [("sales-inviter", ["sales"])])]
