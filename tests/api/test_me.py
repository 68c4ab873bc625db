"""/api/v1/me/invitations: the caller's pending invitations (verified address, every tenant),
accepted or declined through the account page's service; refusals as problem+json."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from portal import tenants
from portal.extensions import db
from portal.invitations import service
from portal.models import AuditEvent, Flow, Group, Invitation, InvitationUse, User, utcnow

from ..conftest import sign_in
from ..helpers import api_token, bearer, existing_user

PROBLEM = "application/problem+json"


def _invite(app, admin, email: str, *, tenant: str | None = None, name: str = "join us",
            group: str | None = None, **kwargs) -> int:
    with app.app_context():
        if tenant:
            where = tenants.by_slug(tenant) or tenants.create_tenant(name=tenant.title(), slug=tenant)
            tenants.use_tenant(where)
        groups = []
        if group:
            groups = [Group(name=group, attributes={})]
            db.session.add_all(groups)
            db.session.commit()
        flow = db.session.scalar(select(Flow).filter_by(slug="default-enrollment-flow"))
        invitation = service.create_invitation(
            name=name, flow=flow, expires_at=utcnow() + timedelta(days=7), email=email,
            created_by=db.session.get(User, admin), groups=groups, **kwargs)
        tenants.use_tenant(None)
        return invitation.id


def test_pending_invitations_of_every_tenant_then_accept(client, app, admin):
    sam = existing_user(app, "sam")
    home = _invite(app, admin, "sam@example.com", name="home")
    beta = _invite(app, admin, "SAM@example.com", tenant="beta", name="beta crew", group="crew")
    _invite(app, admin, "other@example.com", name="not for sam")
    token = bearer(api_token(app, "sam", ()))  # no permission needed for one's own invitations
    mine = client.get("/api/v1/me/invitations", headers=token).get_json()
    assert [(i["id"], i["tenant"]["slug"]) for i in mine] == [(beta, "beta"), (home, "default")]

    accepted = client.post(f"/api/v1/me/invitations/{beta}/accept", headers=token)
    assert accepted.status_code == 200
    body = accepted.get_json()
    assert body["tenant"]["slug"] == "beta" and [g["name"] for g in body["groups"]] == ["crew"]
    with app.app_context():
        user = db.session.get(User, sam)
        assert [t.slug for t in sorted(user.tenants, key=lambda t: t.slug)] == ["beta", "default"]
        assert [g.name for g in user.groups] == ["crew"]
        assert db.session.scalar(select(InvitationUse).filter_by(invitation_id=beta, user_id=sam))
        event = db.session.scalar(select(AuditEvent).filter_by(action="invitation.accepted",
                                                               object_id=beta))
        assert event.actor_id == sam and event.tenant_id == tenants.by_slug("beta").id
        assert event.detail["api_token"]["name"] == "script"  # the event names the token
    assert [i["id"] for i in client.get("/api/v1/me/invitations", headers=token).get_json()] == [home]
    again = client.post(f"/api/v1/me/invitations/{beta}/accept", headers=token)
    assert again.status_code == 404 and again.mimetype == PROBLEM  # no longer pending

    declined = client.post(f"/api/v1/me/invitations/{home}/decline", headers=token)
    assert declined.status_code == 200 and declined.get_json() == {"invitation_id": home,
                                                                   "declined": True}
    assert client.get("/api/v1/me/invitations", headers=token).get_json() == []
    with app.app_context():
        assert db.session.get(Invitation, home).revoked_at is None  # the link keeps working
        assert db.session.scalar(select(AuditEvent).filter_by(action="invitation.declined",
                                                              object_id=home)) is not None


def test_someone_elses_or_an_unverified_address_gets_404(client, app, admin):
    existing_user(app, "sam")
    existing_user(app, "uma", verified=False)
    other = _invite(app, admin, "other@example.com")
    for_uma = _invite(app, admin, "uma@example.com", name="for uma")
    sam = bearer(api_token(app, "sam", ()))
    uma = bearer(api_token(app, "uma", ()))
    refused = client.post(f"/api/v1/me/invitations/{other}/accept", headers=sam)
    assert refused.status_code == 404 and refused.mimetype == PROBLEM
    assert client.post(f"/api/v1/me/invitations/{other}/decline", headers=sam).status_code == 404
    assert client.get("/api/v1/me/invitations", headers=uma).get_json() == []
    assert client.post(f"/api/v1/me/invitations/{for_uma}/accept", headers=uma).status_code == 404
    with app.app_context():
        assert db.session.scalar(select(InvitationUse.id)) is None


def test_a_refusal_of_the_service_is_problem_json(client, app, admin, monkeypatch):
    existing_user(app, "sam")
    paused = _invite(app, admin, "sam@example.com", tenant="beta", name="paused")
    token = bearer(api_token(app, "sam", ()))
    with app.app_context():  # the tenant is paused between listing and accepting: grant_access
        beta = tenants.by_slug("beta")  # says no (the list would no longer offer it)
        tenants.update_tenant(beta, name=beta.name, slug=beta.slug, active=False)
    monkeypatch.setattr(service, "pending_invitation",
                        lambda user, invitation_id: db.session.get(Invitation, invitation_id))
    refused = client.post(f"/api/v1/me/invitations/{paused}/accept", headers=token)
    assert refused.status_code == 403 and refused.mimetype == PROBLEM
    assert refused.get_json()["title"] == "This invitation is paused"


def test_a_browser_session_may_not_accept(app, admin):
    existing_user(app, "sam")
    invitation = _invite(app, admin, "sam@example.com")
    browser = app.test_client()
    sign_in(browser, "sam")
    assert [i["id"] for i in browser.get("/api/v1/me/invitations").get_json()] == [invitation]
    assert browser.post(f"/api/v1/me/invitations/{invitation}/accept").status_code == 401


def test_an_instance_invitation_is_listed_with_no_tenant_and_accepted_once(client, app, admin):
    sam = existing_user(app, "sam")
    instance = _invite(app, admin, "sam@example.com", name="the instance", instance=True,
                       grants_superuser=True)
    token = bearer(api_token(app, "sam", ()))
    mine = client.get("/api/v1/me/invitations", headers=token).get_json()
    assert [(i["id"], i["tenant"]) for i in mine] == [(instance, None)]
    accepted = client.post(f"/api/v1/me/invitations/{instance}/accept", headers=token)
    assert accepted.status_code == 200 and accepted.get_json()["tenant"] is None
    again = client.post(f"/api/v1/me/invitations/{instance}/accept", headers=token)
    assert again.status_code in (404, 409, 410)
    with app.app_context():
        assert db.session.get(User, sam).is_superuser is True
        assert db.session.get(Invitation, instance).use_count == 1
        assert len(db.session.scalars(select(InvitationUse).filter_by(user_id=sam)).all()) == 1
