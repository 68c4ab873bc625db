"""portal.admin.invitations, existing accounts: the admin who creates an invitation for an
address that has an account is told (only an admin who may see accounts)."""

from __future__ import annotations

from portal.access import INVITATIONS_MANAGE, USERS_MANAGE

from ..conftest import numbers_in, sign_in, submit
from ..helpers import existing_user, future_input, invitation_flow_id, make_member

NOTE = "sam@example.com is already a member of this tenant; they will be asked to join."


def _invite(client, to: str):
    return submit(client, "/admin/invitations/new", {
        "kind": "recipients", "flow": invitation_flow_id(client), "expires": future_input(7),
        "to": to,
    }).get_data(as_text=True)


def test_the_admin_is_told_the_address_has_an_account(app, client, admin):
    existing_user(app, "sam")
    sign_in(client, "admin")
    assert NOTE in _invite(client, "sam@example.com")


def test_a_new_address_gets_no_note(app, client, admin):
    existing_user(app, "sam")
    sign_in(client, "admin")
    page = _invite(client, "nia@example.com")
    assert "already has an account" not in page
    assert numbers_in(page, "{} invitation created") == 1


def test_an_admin_who_may_not_see_accounts_learns_nothing(app, client, admin):
    """Same answer for an address with an account and one without: no enumeration."""
    existing_user(app, "sam")
    make_member(app, "inviter", permissions=[INVITATIONS_MANAGE])
    sign_in(client, "inviter")
    with_account = _invite(client, "sam@example.com")
    without = _invite(client, "nobody@example.com")
    assert "already has an account" not in with_account
    assert "already has an account" not in without
    assert numbers_in(with_account, "{} invitation created") == 1
    assert numbers_in(without, "{} invitation created") == 1


def test_an_admin_who_may_see_accounts_is_told(app, client, admin):
    existing_user(app, "sam")
    make_member(app, "people", permissions=[INVITATIONS_MANAGE, USERS_MANAGE])
    sign_in(client, "people")
    assert NOTE in _invite(client, "sam@example.com")


def test_bulk_preview_marks_an_address_with_an_account_only_for_who_may_see_accounts(app, admin):
    existing_user(app, "sam")
    make_member(app, "inviter", permissions=[INVITATIONS_MANAGE])
    for login, told in (("admin", True), ("inviter", False)):
        client = app.test_client()
        sign_in(client, login)
        page = submit(client, "/admin/invitations/bulk", {
            "text": "sam@example.com\nnia@example.com", "flow": invitation_flow_id(client),
            "expires": future_input(), "preview": "Preview"}).get_data(as_text=True)
        assert ("Already a member of this tenant: will be asked to join" in page) is told, login
        assert "Already a user" not in page
        assert numbers_in(page, "Preview: {} of {} rows will be invited") == (2, 2)


def _two_tenants_with_sam_in_beta(app) -> None:
    """Tenants alpha and beta; sam is a member of beta only; alpha's "people" admin may manage
    its users and invitations (everything in alpha, nothing beyond it)."""
    from portal import tenants
    from portal.auth.service import create_user
    from portal.extensions import db
    from portal.models import Group, Role

    from ..conftest import TEST_PASSWORD

    with app.app_context():
        alpha = tenants.create_tenant(name="Alpha", slug="alpha")
        beta = tenants.create_tenant(name="Beta", slug="beta")
        tenants.use_tenant(beta)
        create_user(username="sam", email="sam@example.com", password=TEST_PASSWORD)
        tenants.use_tenant(alpha)
        people = create_user(username="people", email="people@example.com", password=TEST_PASSWORD)
        people.groups.append(Group(name="people", attributes={}, roles=[
            Role(name="people", permissions=[INVITATIONS_MANAGE, USERS_MANAGE])]))
        db.session.commit()


def _invite_in(client, slug: str, to: str) -> str:
    import re

    url = f"/t/{slug}/admin/invitations/new"
    form = client.get(url).get_data(as_text=True)
    flow = re.search(r'<select[^>]*name="flow".*?<option [^>]*value="(\d+)"', form, re.S).group(1)
    return submit(client, url, {
        "kind": "recipients", "flow": flow, "expires": future_input(7),
        "to": to,
    }).get_data(as_text=True)


def test_a_tenant_admin_is_told_only_of_their_own_tenants_members(app, admin):
    """An account of another tenant is not a tenant admin's to learn about: the same page as for
    an address without an account. A member of their tenant is named as such."""
    _two_tenants_with_sam_in_beta(app)
    client = app.test_client()
    sign_in(client, "people")
    elsewhere = _invite_in(client, "alpha", "sam@example.com")
    nobody = _invite_in(client, "alpha", "nobody@example.com")
    for page in (elsewhere, nobody):
        assert "already" not in page
        assert numbers_in(page, "{} invitation created") == 1
    member = _invite_in(client, "alpha", "people@example.com")
    assert "people@example.com is already a member of this tenant; they will be asked to join." in member


def test_a_superadmin_is_told_of_members_and_of_accounts_elsewhere(app, admin):
    _two_tenants_with_sam_in_beta(app)
    client = app.test_client()
    sign_in(client, "admin")
    assert "sam@example.com already has an account; they will be asked to join." in _invite_in(
        client, "alpha", "sam@example.com")
    assert NOTE in _invite_in(client, "beta", "sam@example.com")
