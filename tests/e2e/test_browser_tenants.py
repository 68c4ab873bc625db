"""Issue 11's "done when", in a real browser: a superadmin creates two tenants through the pages;
a tenant admin of one invites, with a group and a role limited to namespaces, (a) a new person,
who enrolls into that tenant, and existing users of the other tenant, who accept (b) while
signed in and (c) from signed out, through "I already have an account" and the sign-in flow."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from portal import tenants
from portal.access import grants_for
from portal.auth import service as accounts
from portal.extensions import db
from portal.models import Group, Invitation, MemberRole, Role, Tenant, User, tenant_members

from ..conftest import TEST_PASSWORD

pytestmark = pytest.mark.e2e

FLOW_PATH = "/if/flow/default-enrollment-flow/"


def _tenant_a_staff(app) -> None:
    """Tenant A's admin (an inviter through a group of A), a group and a role to give."""
    with app.app_context():
        team_a = db.session.scalar(select(Tenant).filter_by(slug="team-a"))
        tenants.use_tenant(team_a)
        lead = accounts.create_user(username="lead", email="lead@example.com",
                                    password=TEST_PASSWORD, name="Lee Lead")
        lead.groups.append(Group(name="leads", attributes={}, roles=[
            Role(name="inviter", permissions=["invitations:manage", "audit:view"])]))
        db.session.add_all([Group(name="crew", attributes={}),
                            Role(name="auditor", permissions=["audit:view"], namespaces=[])])
        tenants.add_member(lead, team_a)
        db.session.commit()


def _member_of_b(app, username: str) -> None:
    """An account made in tenant B (as B's admin pages make them), its address verified."""
    with app.app_context():
        tenants.use_tenant(db.session.scalar(select(Tenant).filter_by(slug="team-b")))
        user = accounts.create_user(username=username, email=f"{username}@example.com",
                                    password=TEST_PASSWORD, name=username.capitalize())
        accounts.mark_email_verified(user, user.email)
        db.session.commit()


def _invite(page, live_server, name: str, *, mistype_first: bool = False) -> str:
    """Tenant A's admin makes a link invitation with group crew and auditor limited to sales
    (in auditor's own row). `mistype_first`: a bad namespace first, refused in its row with
    everything typed kept."""
    page.goto("/t/team-a/admin/invitations/new?mode=link")
    expect(page.get_by_role("heading", name="Create invitation")).to_be_visible()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Flow").select_option(label="Default enrollment Flow (default-enrollment-flow)")
    page.get_by_label("Single use").check()
    page.get_by_label("crew", exact=True).check()
    page.get_by_label("auditor", exact=True).check()
    namespaces = page.get_by_label("Namespaces for auditor")
    if mistype_first:
        namespaces.fill("Sales!")
        page.get_by_role("button", name="Create invitation").click()
        expect(page.get_by_role("alert")).to_contain_text("“Sales!” is not a namespace")
        namespaces = page.get_by_label("Namespaces for auditor")
        expect(namespaces).to_have_value("Sales!")
        expect(namespaces).to_have_attribute("aria-invalid", "true")
        expect(page.get_by_label("auditor", exact=True)).to_be_checked()
        expect(page.get_by_label("Name", exact=True)).to_have_value(name)
    namespaces.fill("sales")
    page.get_by_role("button", name="Create invitation").click()
    expect(page.get_by_role("status")).to_contain_text("Invitation created")
    grants = page.locator(".invitation-grants")
    expect(grants.locator(".grants-tenant")).to_have_text("Team A")
    expect(grants.locator(".grants-groups")).to_have_text("crew")
    expect(grants.locator(".grants-roles")).to_have_text("auditor (namespaces: sales)")
    link = page.get_by_label("Invitation link").input_value()
    assert link.startswith(f"{live_server}{FLOW_PATH}?itoken=")
    return link


def _expect_acceptance(page, who: str) -> None:
    expect(page.get_by_role("heading", name=f"Join Team A as {who}?")).to_be_visible()
    grants = page.locator("#acceptance .grants")
    expect(grants).to_contain_text("Team A")
    expect(grants).to_contain_text("Lee Lead")
    expect(grants.locator("dt:has-text('Groups') + dd")).to_have_text("crew")
    expect(grants.locator("dt:has-text('Roles') + dd")).to_have_text("auditor (in sales)")


def _access(app, username: str):
    """(tenant slugs, group names, direct roles with namespaces, grants in A, grants in B)."""
    with app.app_context():
        user = db.session.scalar(select(User).filter_by(username=username))
        slugs = sorted(db.session.scalars(
            select(Tenant.slug).join(tenant_members, tenant_members.c.tenant_id == Tenant.id)
            .where(tenant_members.c.user_id == user.id)))
        slug_of = dict(db.session.execute(select(Tenant.id, Tenant.slug)).all())
        direct = sorted((slug_of[d.tenant_id], d.role.name, list(d.namespaces or []))
                        for d in db.session.scalars(select(MemberRole).filter_by(user_id=user.id)))
        team_a = db.session.scalar(select(Tenant).filter_by(slug="team-a"))
        team_b = db.session.scalar(select(Tenant).filter_by(slug="team-b"))
        return (slugs, sorted(g.name for g in user.groups), direct,
                grants_for(user, team_a).scopes, grants_for(user, team_b).scopes)


def test_tenant_admin_invites_a_new_person_and_existing_users_of_another_tenant(
        app, admin, new_context, live_server, sign_in, sign_up, screenshot):
    # The superadmin creates two tenants through the pages.
    root = new_context().new_page()
    sign_in(root)
    for name, slug in (("Team A", "team-a"), ("Team B", "team-b")):
        root.goto("/instance/tenants/new")
        root.get_by_label("Name").fill(name)
        root.get_by_label("Slug").fill(slug)
        root.get_by_role("button", name="Save").click()
        expect(root.get_by_role("status")).to_contain_text(f"Tenant “{name}” created.")
    rows = root.locator("table tbody tr")
    expect(rows.locator("td:nth-child(2)")).to_have_text(["default", "team-a", "team-b"])
    screenshot(root, "tenants-list")

    _tenant_a_staff(app)
    _member_of_b(app, "bob")
    _member_of_b(app, "bea")

    lead = new_context().new_page()
    sign_in(lead, "lead")
    links = {name: _invite(lead, live_server, name, mistype_first=name == "for-nia")
             for name in ("for-nia", "for-bob", "for-bea")}
    screenshot(lead, "tenant-invitation-detail")

    # (a) A new person: the first page shows what the invitation gives; they enroll into A.
    nia = new_context().new_page()
    nia.goto(links["for-nia"])
    expect(nia).to_have_url(re.compile(re.escape(FLOW_PATH) + "$"))
    invited = nia.locator(".invitation-grants")
    expect(invited.get_by_role("heading", name="You are invited")).to_be_visible()
    expect(invited.locator(".grants-tenant")).to_have_text("Team A")
    expect(invited.locator(".grants-groups")).to_have_text("crew")
    expect(invited.locator(".grants-roles")).to_have_text("auditor (namespaces: sales)")
    expect(invited.locator(".grants-invited-by")).to_have_text("Lee Lead")
    screenshot(nia, "tenant-invitee-first-page")
    sign_up(nia, "nia", "Nia Newbie", "nia@example.com")
    expect(nia).to_have_url(f"{live_server}/account/")
    expect(nia.get_by_role("heading", name="Welcome, Nia Newbie!")).to_be_visible()
    assert _access(app, "nia") == (
        ["team-a"], ["crew"], [("team-a", "auditor", ["sales"])], {"audit:view": {"sales"}}, {})

    # (b) An existing user of B, signed in, opens the link: "Join Team A as Bob?", Accept.
    bob_page = new_context().new_page()
    sign_in(bob_page, "bob")
    expect(bob_page).to_have_url(f"{live_server}/account/")
    bob_page.goto(links["for-bob"])
    _expect_acceptance(bob_page, "Bob")
    screenshot(bob_page, "tenant-accept")
    bob_page.get_by_role("button", name="Accept").click()
    expect(bob_page).to_have_url(f"{live_server}/account/")
    expect(bob_page.get_by_text("You accepted the invitation “for-bob”.")).to_be_visible()
    assert _access(app, "bob") == (
        ["team-a", "team-b"], ["crew"], [("team-a", "auditor", ["sales"])],
        {"audit:view": {"sales"}}, {})

    # (c) Another user of B, signed out: "I already have an account", sign in, back, Accept.
    bea_page = new_context().new_page()
    bea_page.goto(links["for-bea"])
    expect(bea_page.locator(".invitation-grants .grants-tenant")).to_have_text("Team A")
    bea_page.get_by_role("button", name="I already have an account").click()
    bea_page.get_by_label("Username or email").fill("bea")
    bea_page.get_by_role("button", name="Sign in").click()
    bea_page.get_by_label("Password").fill(TEST_PASSWORD)
    bea_page.get_by_role("button", name="Sign in").click()
    _expect_acceptance(bea_page, "Bea")
    bea_page.get_by_role("button", name="Accept").click()
    expect(bea_page).to_have_url(f"{live_server}/account/")
    assert _access(app, "bea") == (
        ["team-a", "team-b"], ["crew"], [("team-a", "auditor", ["sales"])],
        {"audit:view": {"sales"}}, {})

    with app.app_context():
        uses = {i.name: (i.tenant.slug, i.use_count)
                for i in db.session.scalars(select(Invitation))}
        assert uses == {"for-nia": ("team-a", 1), "for-bob": ("team-a", 1), "for-bea": ("team-a", 1)}
        assert sorted(db.session.scalars(select(User.username))) == ["admin", "bea", "bob", "lead", "nia"]
