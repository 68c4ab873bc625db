"""Tenants through the admin: the superadmin's tenant pages, /admin/... links, the switcher, and
an invitation to a tenant with a group and a role limited to namespaces."""

from __future__ import annotations

import html

from flask.testing import FlaskClient
from sqlalchemy import select

from portal import tenants
from portal.access import grants_for
from portal.auth import service as accounts
from portal.extensions import db
from portal.models import Group, Invitation, MemberRole, Role, Tenant, User

from ..conftest import TEST_PASSWORD, csrf_from, numbers_in, path_of, sign_in, submit
from ..helpers import complete_wizard


def _text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def test_a_superadmin_creates_renames_deactivates_and_deletes_a_tenant(app, client, admin):
    sign_in(client)
    assert "tenant-switcher" not in client.get("/admin/").get_data(as_text=True)  # one tenant
    bad = submit(client, "/instance/tenants/new", {"name": "Team A", "slug": "Not A Slug!"})
    assert "lower-case letters" in _text(bad) and 'value="Team A"' in _text(bad)
    created = submit(client, "/instance/tenants/new", {"name": "Team A", "slug": "team-a"})
    assert "Tenant “Team A” created." in _text(created)
    assert "tenant-switcher" in client.get("/t/team-a/admin/").get_data(as_text=True)  # two now
    with app.app_context():
        team = db.session.scalar(select(Tenant).filter_by(slug="team-a"))
        tenants.use_tenant(team)
        db.session.add(Group(name="crew", attributes={}))
        db.session.commit()
        team_id = team.id
    submit(client, f"/instance/tenants/{team_id}", {"name": "Team Alpha", "slug": "team-a"})
    with app.app_context():
        team = db.session.get(Tenant, team_id)
        assert (team.name, team.active) == ("Team Alpha", False)  # the box was not ticked
    page = _text(client.get(f"/instance/tenants/{team_id}/delete"))
    assert numbers_in(page, "{} group(s)") == 1 and numbers_in(page, "{} invitation(s)") == 0
    submit(client, f"/instance/tenants/{team_id}/delete", {})
    with app.app_context():
        assert db.session.get(Tenant, team_id) is None
        assert db.session.scalar(select(Group).filter_by(name="crew")) is None
    default_id = 1
    refused = _text(client.get(f"/instance/tenants/{default_id}/delete"))
    assert "The default tenant cannot be deleted." in refused


def test_tenant_pages_are_for_superadmins_only(app, admin):
    from ..helpers import make_member

    make_member(app, "lead", permissions=["access:manage", "users:manage"])
    client = app.test_client()
    sign_in(client, "lead")
    for url in ("/instance/tenants/", "/instance/tenants/new", "/instance/tenants/1/delete"):
        assert client.get(url).status_code == 403


def test_old_admin_links_lead_to_the_same_page_in_the_home_tenant(app, admin):
    client = app.test_client()
    sign_in(client)
    raw = FlaskClient.open.original  # without the tests' /admin rewriting (conftest)
    response = raw(client, "/admin/users/?q=ada")
    assert response.status_code == 302 and response.headers["Location"] == "/t/default/admin/users/?q=ada"
    response = raw(client, "/admin/invitations/bulk-action", method="POST")
    assert response.status_code == 308  # a POST stays a POST
    assert client.get("/t/nowhere/admin/").status_code == 404


def _beta_with_a_lead(app) -> tuple[int, int, int, int]:
    """Tenant Beta, its admin "lead" (invitations and audit), a group, a role within the lead's
    ceiling (auditor) and one beyond it (flows-boss): (beta, crew, auditor, boss) ids."""
    with app.app_context():
        beta = tenants.create_tenant(name="Beta", slug="beta")
        tenants.use_tenant(beta)
        lead = accounts.create_user(username="lead", email="lead@example.com", password=TEST_PASSWORD)
        lead.groups.append(Group(name="leads", attributes={}, roles=[
            Role(name="inviter", permissions=["invitations:manage", "audit:view"])]))
        db.session.add_all([Group(name="crew", attributes={}),
                            Role(name="auditor", permissions=["audit:view"], namespaces=[]),
                            Role(name="flows-boss", permissions=["flows:manage"])])
        db.session.commit()
        return (beta.id, db.session.scalar(select(Group.id).filter_by(name="crew")),
                db.session.scalar(select(Role.id).filter_by(name="auditor")),
                db.session.scalar(select(Role.id).filter_by(name="flows-boss")))


def _direct_roles_of(app) -> dict[str, list[tuple[str, list[str]]]]:
    with app.app_context():
        return {i.email or i.name: [(d.role.name, d.namespaces) for d in i.direct_roles]
                for i in db.session.scalars(select(Invitation).order_by(Invitation.id))}


def test_a_tenant_admin_invites_with_a_group_and_a_namespace_limited_role(app, admin):
    beta_id, crew, auditor, boss = _beta_with_a_lead(app)
    client = app.test_client()
    sign_in(client, "lead")
    form_url = "/t/beta/admin/invitations/new?mode=link"
    page = _text(client.get(form_url))
    assert "auditor" in page and "flows-boss" not in page  # beyond the lead: not offered
    flow_id = __import__("re").search(r'name="flow"[^>]*>\s*<option value="(\d+)"', page).group(1)
    forged = client.post(form_url, data={
        "csrf_token": csrf_from(page), "kind": "link", "name": "forged", "flow": flow_id,
        "expires": "2099-01-01T00:00", "roles": [str(boss)]})
    assert forged.status_code in (200, 403)
    made = client.post(form_url, data={
        "csrf_token": csrf_from(page), "kind": "link", "name": "crew link", "flow": flow_id,
        "expires": "2099-01-01T00:00", "groups": [str(crew)], "roles": [str(auditor)],
        f"role_namespaces-{auditor}": "sales"}, follow_redirects=True)
    detail = _text(made)
    assert "crew link" in detail and "What this invitation gives" in detail
    assert "namespaces: sales" in detail and "Beta" in detail
    with app.app_context():
        assert db.session.scalar(select(Invitation).filter_by(name="forged")) is None
        invitation = db.session.scalar(select(Invitation).filter_by(name="crew link"))
        assert invitation.tenant_id == beta_id
        from portal.invitations import service

        link = path_of(service.invitation_link(invitation, "http://portal.test"))
    newcomer = app.test_client()
    first = _text(newcomer.get(link, follow_redirects=True))
    assert "You are invited" in first and "crew" in first and "namespaces: sales" in first
    complete_wizard(newcomer, link, username="nia", email="nia@example.com")
    with app.app_context():
        nia = db.session.scalar(select(User).filter_by(username="nia"))
        beta = db.session.scalar(select(Tenant).filter_by(slug="beta"))
        assert [t.slug for t in nia.tenants] == ["beta"]
        assert [g.name for g in nia.groups] == ["crew"]
        direct = db.session.scalars(select(MemberRole).filter_by(user_id=nia.id)).all()
        assert [(d.role.name, d.namespaces) for d in direct] == [("auditor", ["sales"])]
        assert grants_for(nia, beta).scopes == {"audit:view": {"sales"}}
        assert grants_for(nia, tenants.default_tenant()).scopes == {}


def test_a_new_account_joins_every_tenant_its_groups_are_in_without_reading_memberships(app):
    """grant_invitation_access(new_account=True): the account was inserted in this transaction,
    so its memberships are written at once (one INSERT), each tenant once; the grants are the
    same as for an existing account."""
    from ..querycount import count_statements

    with app.app_context():
        beta = tenants.create_tenant(name="Beta", slug="beta")
        tenants.use_tenant(beta)
        crew = Group(name="crew", attributes={})
        db.session.add(crew)
        db.session.commit()
        tenants.use_tenant(None)
        default = tenants.default_tenant()
        newcomer = User(username="newcomer", name="", email="newcomer@example.com", attributes={})
        newcomer.groups.append(crew)
        db.session.add(newcomer)
        db.session.flush()
        with count_statements(app) as statements:
            tenants.grant_invitation_access(newcomer, None, flow=None, new_account=True)
        assert not any("tenant_members" in s for s in statements if s.startswith("SELECT"))
        assert [s.split()[2] for s in statements if s.startswith("INSERT")] == ["tenant_members"]
        bare = User(username="bare", name="", email="bare@example.com", attributes={})
        db.session.add(bare)
        db.session.flush()
        tenants.grant_invitation_access(bare, None, flow=None, new_account=True)
        assert bare.groups == []
        db.session.commit()
        assert sorted(t.slug for t in db.session.get(User, newcomer.id).tenants) == ["beta", "default"]
        assert [t.id for t in db.session.get(User, bare.id).tenants] == [default.id]
        # Granting again (an existing account now) reads first and adds nothing twice.
        tenants.grant_invitation_access(newcomer, None, flow=None)
        db.session.commit()
        db.session.expire_all()
        assert len(db.session.get(User, newcomer.id).tenants) == 2


def test_bulk_invite_attaches_direct_roles_within_the_ceiling(app, admin):
    beta_id, crew, auditor, boss = _beta_with_a_lead(app)
    client = app.test_client()
    sign_in(client, "lead")
    url = "/t/beta/admin/invitations/bulk"
    page = _text(client.get(url))
    assert "Roles given directly" in page and "auditor" in page and "flows-boss" not in page
    flow_id = __import__("re").search(r'name="flow"[^>]*>\s*<option value="(\d+)"', page).group(1)
    base = {"csrf_token": csrf_from(page), "text": "ann@example.com\nbo@example.com",
            "flow": flow_id, "expires": "2099-01-01T00:00", "groups": [str(crew)],
            f"role_namespaces-{auditor}": "sales, hr", "confirm": "Create invitations"}
    forged = client.post(url, data={**base, "roles": [str(boss)]})
    assert forged.status_code in (200, 403) and _direct_roles_of(app) == {}
    made = client.post(url, data={**base, "roles": [str(auditor)]}, follow_redirects=True)
    assert numbers_in(_text(made), "{} invitations created") == 2
    assert _direct_roles_of(app) == {"ann@example.com": [("auditor", ["sales", "hr"])],
                                     "bo@example.com": [("auditor", ["sales", "hr"])]}
    with app.app_context():
        assert {i.tenant_id for i in db.session.scalars(select(Invitation))} == {beta_id}


def test_duplicate_copies_the_direct_roles_and_their_namespaces(app, admin):
    import re

    from portal.invitations import service

    beta_id, crew, auditor, boss = _beta_with_a_lead(app)
    with app.app_context():
        tenants.use_tenant(db.session.get(Tenant, beta_id))
        flow = db.session.scalar(select(tenants.Flow).filter_by(slug="default-enrollment-flow"))
        source = service.create_invitation(
            name="crew link", flow=flow, expires_at=None,
            created_by=db.session.scalar(select(User).filter_by(username="lead")),
            groups=[db.session.get(Group, crew)], roles=[(db.session.get(Role, auditor), ["sales", "hr"])])
        source_id = source.id
    client = app.test_client()
    sign_in(client, "lead")
    url = f"/t/beta/admin/invitations/new?from={source_id}"
    page = client.get(url).get_data(as_text=True)
    boxes = re.findall(r'<input[^>]*name="roles"[^>]*>', page)
    ticked = [re.search(r'value="(\d+)"', box).group(1) for box in boxes if "checked" in box]
    assert ticked == [str(auditor)]
    assert re.search(rf'name="role_namespaces-{auditor}"[^>]*value="sales, hr"', page)
    made = client.post(url, data={
        "csrf_token": csrf_from(page), "kind": "link", "name": "crew link (copy)",
        "flow": str(_flow_id(app)), "expires": "2099-01-01T00:00", "groups": [str(crew)],
        "roles": ticked, f"role_namespaces-{auditor}": "sales, hr"}, follow_redirects=True)
    assert made.status_code == 200
    assert _direct_roles_of(app) == {"crew link": [("auditor", ["sales", "hr"])],
                                     "crew link (copy)": [("auditor", ["sales", "hr"])]}


def _flow_id(app) -> int:
    with app.app_context():
        return db.session.scalar(select(tenants.Flow.id).filter_by(slug="default-enrollment-flow"))
