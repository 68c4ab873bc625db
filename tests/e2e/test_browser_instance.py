"""Invitations to the whole instance, in a real browser: a superadmin invites at
/instance/invitations/ (one as superadmin); a new person enrolls into an account of no tenant,
and an existing user, signed in, joins the instance with "Join the instance as <user>?"."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from portal.auth import service as accounts
from portal.extensions import db
from portal.models import Invitation, User

from ..conftest import TEST_PASSWORD

pytestmark = pytest.mark.e2e


def _invite(page, name: str, *, superadmin: bool) -> str:
    page.goto("/instance/invitations/new?mode=link")
    expect(page.get_by_role("heading", name="Create invitation to the instance")).to_be_visible()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Flow").select_option(label="Default enrollment Flow (default-enrollment-flow)")
    page.get_by_label("Single use").check()
    if superadmin:
        page.get_by_label("Make them instance superadmins").check()
    page.get_by_role("button", name="Create invitation").click()
    expect(page.get_by_role("status")).to_contain_text("Invitation created")
    expect(page.locator(".invitation-grants .grants-instance")).to_have_text(
        "an account on this instance" + (", as instance superadmin" if superadmin else ""))
    return page.get_by_label("Invitation link").input_value()


def _state(app, username: str) -> tuple[bool, list[str]]:
    with app.app_context():
        user = db.session.scalar(select(User).filter_by(username=username))
        return user.is_superuser, sorted(t.slug for t in user.tenants)


def test_a_superadmin_invites_to_the_instance_and_both_kinds_of_invitee_join(
        app, admin, new_context, live_server, sign_in, sign_up, screenshot):
    with app.app_context():
        accounts.create_user(username="sam", email="sam@example.com", password=TEST_PASSWORD,
                             name="Sam")
    root = new_context().new_page()
    sign_in(root)
    nia_link = _invite(root, "for-nia", superadmin=True)
    screenshot(root, "instance-invitation-detail")
    sam_link = _invite(root, "for-sam", superadmin=False)
    root.goto("/instance/invitations/")
    expect(root.get_by_role("heading", name="Instance invitations")).to_be_visible()
    expect(root.locator("table tbody tr")).to_have_count(2)

    nia = new_context().new_page()
    nia.goto(nia_link)
    invited = nia.locator(".invitation-grants")
    expect(invited.locator(".grants-instance")).to_have_text(
        "an account on this instance, as instance superadmin")
    expect(invited.locator(".grants-invited-by")).to_have_text("Ada Admin")
    sign_up(nia, "nia", "Nia Newbie", "nia@example.com")
    expect(nia).to_have_url(f"{live_server}/account/")
    assert _state(app, "nia") == (True, [])

    sam = new_context().new_page()
    sign_in(sam, "sam")
    sam.goto(sam_link)
    expect(sam.get_by_role("heading", name="Join the instance as Sam?")).to_be_visible()
    expect(sam.locator("#acceptance .grants")).to_contain_text("an account on this instance")
    sam.get_by_role("button", name="Accept").click()
    expect(sam).to_have_url(f"{live_server}/account/")
    expect(sam.get_by_text("You accepted the invitation “for-sam”.")).to_be_visible()
    assert _state(app, "sam") == (False, ["default"])
    with app.app_context():
        assert {i.name: (i.tenant_id, i.use_count) for i in db.session.scalars(select(Invitation))} \
            == {"for-nia": (None, 1), "for-sam": (None, 1)}
