"""An existing account accepts invitations in a real browser: once while signed in, and once
from signed out, through "I already have an account" and the sign-in flow."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from portal.extensions import db
from portal.models import Group, Invitation, User

from ..conftest import TEST_PASSWORD
from ..helpers import existing_user, invitation_group

pytestmark = pytest.mark.e2e


def _groups(app, user_id: int) -> list[str]:
    with app.app_context():
        return [g.name for g in db.session.get(User, user_id).groups]


def _uses(app) -> dict[str, int]:
    with app.app_context():
        return {i.name: i.use_count for i in db.session.scalars(db.select(Invitation))}


def test_an_existing_user_accepts_signed_in_and_again_through_sign_in(
        app, new_context, live_server, sign_in, invitation_link, screenshot):
    sam = existing_user(app, "sam")
    engineering, sales = invitation_group(app, "engineering"), invitation_group(app, "sales")
    with app.app_context():
        groups = {g.id: g for g in db.session.scalars(db.select(Group))}
    first = invitation_link(name="Join engineering", email="sam@example.com",
                            groups=[groups[engineering]])
    second = invitation_link(name="Join sales", single_use=True, groups=[groups[sales]])

    # Signed in: the link asks to join, with what it gives, and Accept gives it.
    page = new_context().new_page()
    sign_in(page, "sam")
    expect(page).to_have_url(f"{live_server}/account/")
    expect(page.locator("#invitations")).to_contain_text("Join engineering")  # listed there too
    page.goto(first)
    expect(page.get_by_role("heading", name="Join Invitation portal as Sam?")).to_be_visible()
    expect(page.locator(".grants")).to_contain_text("engineering-editor (in eng)")
    expect(page.locator(".grants")).to_contain_text("Ada Admin")
    screenshot(page, "accept-invitation")
    page.get_by_role("button", name="Accept").click()
    expect(page).to_have_url(f"{live_server}/account/")
    expect(page.get_by_text("You accepted the invitation “Join engineering”.")).to_be_visible()
    expect(page.locator("#invitations")).not_to_contain_text("Join engineering")
    assert _groups(app, sam) == ["engineering"]

    # Signed out (another browser): "I already have an account", sign in, back to accept.
    page = new_context().new_page()
    page.goto(second)
    page.get_by_role("button", name="I already have an account").click()
    page.get_by_label("Username or email").fill("sam")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Join Invitation portal as Sam?")).to_be_visible()
    expect(page.locator(".grants")).to_contain_text("sales")
    page.get_by_role("button", name="Accept").click()
    expect(page).to_have_url(f"{live_server}/account/")
    expect(page.get_by_text("You are now in sales.")).to_be_visible()
    assert _groups(app, sam) == ["engineering", "sales"]
    assert _uses(app) == {"Join engineering": 1, "Join sales": 1}
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(User.id))) == 2  # admin and sam only
