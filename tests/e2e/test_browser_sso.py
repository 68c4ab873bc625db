"""SSO in a real browser: Chromium, the portal on loopback, and the real OpenID provider
(panva's oidc-provider with its development login screen, tests/oidc)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import (
    Group,
    Invitation,
    MemberRole,
    SourceConnection,
    Stage,
    Tenant,
    User,
    tenant_members,
)

from ..conftest import TEST_PASSWORD

pytestmark = pytest.mark.e2e

FLOW_PATH = "/if/flow/default-enrollment-flow/"


def _provider_login(page, login: str) -> None:
    """The provider's development screens: any login (the account's sub), any password, then
    "Continue" on the consent screen."""
    page.get_by_placeholder("Enter any login").fill(login)
    page.get_by_placeholder("and password").fill("any password")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()


def _invitation(app, invitation_link, tenant: str | None = None, **kwargs):
    """An invitation with the group "staff"; with `tenant`, of that tenant (created here), its
    group of that tenant, and a direct role "editors" limited to the namespace "eng"."""
    from portal import tenants
    from portal.models import InvitationRole, Role

    with app.app_context():
        if tenant is not None:
            tenants.use_tenant(tenants.create_tenant(name=tenant.title(), slug=tenant))
        staff = Group(name="staff")
        db.session.add(staff)
        db.session.commit()
        staff_id = staff.id
    link = invitation_link(**kwargs)
    with app.app_context():
        invitation = db.session.scalars(select(Invitation)).one()
        invitation.groups.append(db.session.get(Group, staff_id))
        if tenant is not None:
            owner = tenants.by_slug(tenant)
            invitation.tenant_id = owner.id
            role = Role(name="editors", permissions=["invitations:view"], tenant_id=owner.id)
            invitation.direct_roles.append(InvitationRole(role=role, namespaces=["eng"]))
        db.session.commit()
        return invitation.id, link


def tenants_of(user) -> list:
    return list(db.session.scalars(select(Tenant).join(
        tenant_members, tenant_members.c.tenant_id == Tenant.id).where(
        tenant_members.c.user_id == user.id).order_by(Tenant.slug)))


def _offer_on_sign_in(app, source_id: int) -> None:
    with app.app_context():
        stage = db.session.scalar(select(Stage).filter_by(
            name="default-authentication-identification"))
        stage.options = {**stage.options, "sources": [source_id]}
        db.session.commit()


def test_invitee_continues_with_sso_and_is_enrolled_with_the_invitations_groups(
        app, page, invitation_link, sso_source, screenshot):
    invitation_id, link = _invitation(app, invitation_link, tenant="alpha", single_use=True)
    page.goto(link)
    expect(page.get_by_role("heading", name="Welcome! Set up your account")).to_be_visible()
    page.get_by_role("button", name="Continue with Test IdP").click()
    _provider_login(page, "alice")
    expect(page).to_have_url(re.compile(re.escape(FLOW_PATH) + "$"))  # back in the wizard
    expect(page.get_by_label("Username")).to_have_value("alice")
    expect(page.get_by_label("Password", exact=True)).to_have_count(0)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_label("Email")).to_have_value("alice@example.com")
    expect(page.get_by_label("Email")).to_have_attribute("readonly", re.compile(".*"))
    screenshot(page, "sso-01-prefilled")
    page.get_by_role("button", name="Finish").click()
    expect(page.get_by_role("status")).to_contain_text("Welcome, Alice Liddell!")
    with app.app_context():
        alice = db.session.scalar(select(User).filter_by(username="alice"))
        assert alice.password_hash is None and [g.name for g in alice.groups] == ["staff"]
        assert db.session.get(Invitation, invitation_id).use_count == 1
        # enrolled into the invitation's tenant, with its direct role and namespace
        assert [t.slug for t in tenants_of(alice)] == ["alpha"]
        assert [(r.role.name, r.namespaces) for r in db.session.scalars(
            select(MemberRole).filter_by(user_id=alice.id))] == [("editors", ["eng"])]
        assert [c.subject for c in db.session.scalars(
            select(SourceConnection).filter_by(user_id=alice.id))] == ["alice"]


def test_recipient_bound_invitation_with_another_address_is_refused_and_not_consumed(
        app, page, invitation_link, sso_source):
    invitation_id, link = _invitation(app, invitation_link, email="carol@example.com",
                                      single_use=True)
    page.goto(link)
    page.get_by_role("button", name="Continue with Test IdP").click()
    _provider_login(page, "bob")
    expect(page.get_by_role("heading", name="This invitation is for another address")
           ).to_be_visible()
    with app.app_context():
        assert db.session.get(Invitation, invitation_id).use_count == 0
        assert db.session.scalar(select(func.count()).select_from(User)) == 1  # the admin


def test_existing_user_signs_in_with_sso_after_confirming_the_link(app, page, sso_source):
    from portal.auth.service import create_user

    with app.app_context():
        create_user(username="bob", email="bob@example.com", password=TEST_PASSWORD)
    _offer_on_sign_in(app, sso_source)
    page.goto("/auth/login")
    page.get_by_role("button", name="Sign in with Test IdP").click()
    _provider_login(page, "bob")
    expect(page.get_by_role("heading", name="Link your Test IdP account?")).to_be_visible()
    page.get_by_role("button", name="Link and sign in").click()
    page.goto("/account/")
    expect(page.get_by_role("heading", name="Single sign-on")).to_be_visible()
    expect(page.locator("#identities")).to_contain_text("Test IdP")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 1  # bob, no second


def test_sso_only_user_created_directly_signs_in(app, admin, page, new_context, sign_in,
                                                 sso_source):
    sign_in(page)
    _offer_on_sign_in(app, sso_source)
    page.goto("/admin/users/new")
    page.get_by_label("Username").fill("carol")
    page.get_by_label("Email").fill("carol@example.com")
    page.get_by_label("Signs in with").select_option(label="Test IdP only (SSO)")
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("status")).to_contain_text("no password and no link")

    carol = new_context().new_page()
    carol.goto("/auth/login")
    carol.get_by_role("button", name="Sign in with Test IdP").click()
    _provider_login(carol, "carol")
    carol.goto("/account/")
    expect(carol.locator("#identities")).to_contain_text("your only way to sign in")


def test_tampered_state_and_replayed_callback_are_refused(app, page, invitation_link,
                                                          sso_source):
    """The provider's redirect back is recorded on its way; once it has been used, the same
    callback again, or with its state changed, ends on a refusal, and nothing is written."""
    invitation_id, link = _invitation(app, invitation_link, single_use=True)
    callbacks: list[str] = []
    page.on("request", lambda request: callbacks.append(request.url)
            if "/callback?" in request.url else None)
    page.goto(link)
    page.get_by_role("button", name="Continue with Test IdP").click()
    _provider_login(page, "alice")
    expect(page.get_by_label("Username")).to_have_value("alice")  # the real one went through
    assert len(callbacks) == 1 and "code=" in callbacks[0]
    page.goto(callbacks[0])  # replayed: same code, same state
    expect(page.get_by_role("heading", name=re.compile("not valid here|already completed"))
           ).to_be_visible()
    page.goto(re.sub(r"state=[^&]+", "state=tampered", callbacks[0]))
    expect(page.get_by_role("heading", name="This sign-in link is not valid here")).to_be_visible()
    with app.app_context():
        assert db.session.get(Invitation, invitation_id).use_count == 0
        assert db.session.scalar(select(func.count()).select_from(SourceConnection)) == 0
        assert db.session.scalar(select(func.count()).select_from(User)) == 1  # the admin


def test_an_existing_account_accepts_an_invitation_through_sso_and_joins_the_tenant(
        app, page, invitation_link, sso_source, screenshot):
    """bob has an account (of the default tenant, not linked yet). Signed out, he opens a
    single-use invitation of alpha, continues with the provider, confirms the link to his
    account found by the verified address, and is signed in as himself: a member of alpha with
    the invitation's group and role, no second account, the invitation used once (its link
    now says so)."""
    from portal.auth.service import create_user

    with app.app_context():
        create_user(username="bob", email="bob@example.com", password=TEST_PASSWORD)
    invitation_id, link = _invitation(app, invitation_link, tenant="alpha", single_use=True)
    with app.app_context():
        users = db.session.scalar(select(func.count()).select_from(User))  # bob, the admin
    page.goto(link)
    page.get_by_role("button", name="Continue with Test IdP").click()
    _provider_login(page, "bob")
    expect(page.get_by_role("heading", name="Link your Test IdP account?")).to_be_visible()
    screenshot(page, "sso-02-existing-account-confirms")
    page.get_by_role("button", name="Link and sign in").click()
    expect(page).to_have_url(re.compile(r"/account/$"))
    expect(page.get_by_role("status")).to_contain_text("The invitation is accepted")
    expect(page.locator("#identities")).to_contain_text("Test IdP")
    with app.app_context():
        bob = db.session.scalar(select(User).filter_by(username="bob"))
        assert db.session.scalar(select(func.count()).select_from(User)) == users == 2
        assert [t.slug for t in tenants_of(bob)] == ["alpha", "default"]
        assert [(db.session.get(Tenant, g.tenant_id).slug, g.name) for g in bob.groups] == [
            ("alpha", "staff")]
        assert [(r.role.name, r.namespaces) for r in db.session.scalars(
            select(MemberRole).filter_by(user_id=bob.id))] == [("editors", ["eng"])]
        assert db.session.get(Invitation, invitation_id).use_count == 1
        assert [c.subject for c in db.session.scalars(
            select(SourceConnection).filter_by(user_id=bob.id))] == ["bob"]
    page.goto(link)  # used once: the link is spent
    expect(page.get_by_role("heading", name="This invitation has already been used")
           ).to_be_visible()
    with app.app_context():
        assert db.session.get(Invitation, invitation_id).use_count == 1


def test_a_linked_account_accepts_an_invitation_through_sso_directly(
        app, page, invitation_link, sso_source):
    """Linked already, nothing to confirm: back from the provider, bob has joined alpha."""
    from portal.auth.service import create_user
    from portal.sources import service

    with app.app_context():
        bob = create_user(username="bob", email="bob@example.com", password=TEST_PASSWORD)
        service.link(bob, db.session.get(service.OIDCSource, sso_source),
                     service.oidc.Identity(subject="bob"), ip=None)
    invitation_id, link = _invitation(app, invitation_link, tenant="alpha", single_use=True)
    with app.app_context():
        users = db.session.scalar(select(func.count()).select_from(User))  # bob, the admin
    page.goto(link)
    page.get_by_role("button", name="Continue with Test IdP").click()
    _provider_login(page, "bob")
    expect(page.get_by_role("status")).to_contain_text("The invitation is accepted")
    with app.app_context():
        bob = db.session.scalar(select(User).filter_by(username="bob"))
        assert [t.slug for t in tenants_of(bob)] == ["alpha", "default"]
        assert [g.name for g in bob.groups] == ["staff"]
        assert db.session.scalar(select(func.count()).select_from(User)) == users == 2
        assert db.session.get(Invitation, invitation_id).use_count == 1
