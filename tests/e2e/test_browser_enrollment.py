"""The main paths in a real browser: an admin invites, the invitee enrolls, a mistake is corrected."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from portal.extensions import db
from portal.models import Invitation, User
from portal.security.passwords import verify_password

pytestmark = pytest.mark.e2e

NEW_PASSWORD = "violet-kettle-harbour-42"
FLOW_PATH = "/if/flow/default-enrollment-flow/"


def test_admin_invites_copies_the_link_and_invitee_enrolls(app, admin, page, new_context, live_server,
                                                          sign_in, screenshot):
    page.goto("/auth/login")
    screenshot(page, "01-sign-in")
    sign_in(page)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    page.get_by_role("link", name="Create invitation").click()
    expect(page.get_by_role("heading", name="Create invitation")).to_be_visible()
    expect(page.get_by_label("Expires (UTC)")).not_to_have_value("")  # pre-filled
    # No mail server: the form opens on the shareable link.
    expect(page.get_by_role("link", name="One link to share")).to_have_attribute("aria-current", "page")
    page.get_by_label("Name", exact=True).fill("welcome-nia")
    page.get_by_label("Flow").select_option(label="Default enrollment Flow (default-enrollment-flow)")
    page.get_by_label("Attributes").fill("department: Research\nlocation:\n  city: Oslo\n")
    page.get_by_label("Single use").check()
    screenshot(page, "03-invitation-create")
    page.get_by_role("button", name="Create invitation").click()

    expect(page.get_by_role("status")).to_contain_text("Invitation created")
    link_box = page.get_by_label("Invitation link")
    link = link_box.input_value()
    assert link.startswith(f"{live_server}{FLOW_PATH}?itoken=")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#copy-status")).to_have_text("Link copied.")
    assert page.evaluate("navigator.clipboard.readText()") == link
    screenshot(page, "04-invitation-detail")

    # The invitee: another browser, no admin cookie.
    invitee = new_context().new_page()
    invitee.goto(link)
    expect(invitee).to_have_url(re.compile(re.escape(FLOW_PATH) + "$"))  # token out of the address bar
    expect(invitee.get_by_role("heading", name="Welcome! Set up your account")).to_be_visible()
    expect(invitee.get_by_text("Step 1 of 2", exact=True)).to_be_visible()
    screenshot(invitee, "05-wizard-step-1")
    invitee.get_by_label("Username").fill("newbie")
    invitee.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    invitee.get_by_label("Password (repeat)").fill(NEW_PASSWORD)
    invitee.get_by_role("button", name="Continue").click()

    expect(invitee.get_by_text("Step 2 of 2", exact=True)).to_be_visible()
    invitee.get_by_label("Name").fill("Nia Newbie")
    invitee.get_by_label("Email").fill("nia@example.com")
    invitee.get_by_role("button", name="Finish").click()

    expect(invitee).to_have_url(f"{live_server}/account/")
    expect(invitee.get_by_role("heading", name="Welcome, Nia Newbie!")).to_be_visible()
    expect(invitee.get_by_role("status")).to_contain_text("Your account is ready")
    screenshot(invitee, "07-account")

    with app.app_context():
        user = db.session.scalar(select(User).filter_by(username="newbie"))
        assert user is not None and user.email == "nia@example.com"
        assert user.attributes == {"department": "Research", "location": {"city": "Oslo"}}
        assert verify_password(user.password_hash, NEW_PASSWORD)
        assert db.session.scalar(select(Invitation).filter_by(name="welcome-nia")).use_count == 1

    # The admin sees who used it, and the single-use link is no longer offered nor working.
    page.reload()
    expect(page.get_by_role("row", name=re.compile("newbie"))).to_be_visible()
    expect(page.get_by_label("Invitation link")).to_have_count(0)
    late = new_context().new_page()
    response = late.goto(link)
    assert response.status == 410

    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("row", name=re.compile("newbie.*welcome-nia"))).to_be_visible()
    screenshot(page, "02-dashboard")


def test_a_new_admin_following_authentiks_steps_gets_a_link_on_the_first_try(
        app, admin, page, new_context, live_server, sign_in, sign_up):
    """authentik's documentation: Create, then Name, Expires, Flow, Attributes, Single use, Create.
    No mail server is configured (a new portal has none); nothing else is touched."""
    sign_in(page)
    page.get_by_role("link", name="Create invitation").click()
    page.get_by_label("Name", exact=True).fill("first-try")
    page.get_by_label("Expires (UTC)").fill("2099-12-31T12:00")
    page.get_by_label("Flow").select_option(label="Default enrollment Flow (default-enrollment-flow)")
    page.get_by_label("Attributes").fill("department: Research\n")
    page.get_by_label("Single use").check()
    page.get_by_role("button", name="Create invitation").click()

    expect(page.get_by_role("status")).to_contain_text("Invitation created")
    expect(page.get_by_role("alert")).to_have_count(0)
    link = page.get_by_label("Invitation link").input_value()
    assert link.startswith(f"{live_server}{FLOW_PATH}?itoken=")

    # The link works: another browser enrolls with it.
    invitee = new_context().new_page()
    invitee.goto(link)
    expect(invitee.get_by_text("Step 1 of 2", exact=True)).to_be_visible()
    sign_up(invitee, "first.try", "First Try", "first@example.com")
    expect(invitee).to_have_url(f"{live_server}/account/")
    with app.app_context():
        user = db.session.scalar(select(User).filter_by(username="first.try"))
        assert user.attributes == {"department": "Research"}
        invitation = db.session.scalar(select(Invitation).filter_by(name="first-try"))
        assert (invitation.single_use, invitation.use_count, invitation.email) == (True, 1, None)


def test_the_create_form_shows_one_mode_at_a_time(admin, new_context, sign_in):
    """The tabs are links: each shows only its own fields, with or without JavaScript."""
    for javascript in (True, False):
        tab = new_context(java_script_enabled=javascript).new_page()
        sign_in(tab)
        tab.goto("/admin/invitations/new")
        expect(tab.get_by_label("Single use")).to_be_visible()
        expect(tab.get_by_label("To", exact=True)).to_have_count(0)
        tab.get_by_role("link", name="Specific people").click()
        expect(tab.get_by_role("link", name="Specific people")).to_have_attribute("aria-current", "page")
        expect(tab.get_by_label("To", exact=True)).to_be_visible()
        expect(tab.get_by_label("Single use")).to_have_count(0)
        tab.get_by_role("link", name="One link to share").click()
        expect(tab.get_by_label("Single use")).to_be_visible()


def test_a_mistake_on_a_prompt_page_is_shown_at_its_field(page, invitation_link, screenshot):
    page.goto(invitation_link())
    page.get_by_label("Username").fill("careful.carl")
    page.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Password (repeat)").fill(NEW_PASSWORD + "!")
    page.get_by_role("button", name="Continue").click()

    # Still step 1; the summary is announced and takes focus; the error sits at its field.
    expect(page.get_by_text("Step 1 of 2", exact=True)).to_be_visible()
    summary = page.get_by_role("alert").filter(has_text="Please correct")
    expect(summary).to_be_focused()
    repeat = page.get_by_label("Password (repeat)")
    expect(repeat).to_have_attribute("aria-invalid", "true")
    expect(repeat).to_have_accessible_description(re.compile("The passwords do not match"))
    error = page.locator("#password_repeat-error")
    expect(error).to_have_text("The passwords do not match.")
    expect(summary.get_by_role("link", name=re.compile("Password \\(repeat\\)"))).to_have_attribute(
        "href", "#password_repeat")
    expect(page.get_by_label("Username")).to_have_value("careful.carl")  # what was typed is kept
    expect(page.get_by_label("Username")).not_to_have_attribute("aria-invalid", "true")
    screenshot(page, "06-wizard-error")

    # The summary's link takes the user to the field; then they fix it and go on.
    summary.get_by_role("link", name=re.compile("Password \\(repeat\\)")).click()
    expect(repeat).to_be_focused()
    page.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    repeat.fill(NEW_PASSWORD)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_text("Step 2 of 2", exact=True)).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)


def _tab_to(page, accessible_name: str, limit: int = 15) -> None:
    """Press Tab until the focused element has this label (or name), as a keyboard user does."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            """() => {
                const el = document.activeElement;
                const label = el.labels && el.labels.length ? el.labels[0].textContent : "";
                return (label || el.getAttribute("aria-label") || el.textContent || el.value || "").trim();
            }"""
        )
        if focused == accessible_name:
            return
    raise AssertionError(f"Tab never reached {accessible_name!r}")


def test_the_wizard_can_be_completed_with_the_keyboard_alone(app, page, invitation_link, live_server):
    page.goto(invitation_link())
    keyboard = page.keyboard

    # The first Tab reaches the skip link; Enter on it moves focus to the main content.
    keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()

    _tab_to(page, "Username")
    keyboard.type("keyboard.kim")
    _tab_to(page, "Password")
    keyboard.type(NEW_PASSWORD)
    _tab_to(page, "Password (repeat)")
    keyboard.type(NEW_PASSWORD)
    keyboard.press("Enter")  # submits the form from a text field

    expect(page.get_by_text("Step 2 of 2", exact=True)).to_be_visible()
    _tab_to(page, "Name")
    keyboard.type("Kim Keys")
    _tab_to(page, "Email")
    keyboard.type("kim@example.com")
    _tab_to(page, "Finish")
    keyboard.press("Space")  # activates the focused button

    expect(page).to_have_url(re.compile(re.escape(f"{live_server}/account/")))  # maybe with #main
    expect(page.get_by_role("heading", name="Welcome, Kim Keys!")).to_be_visible()
    with app.app_context():
        assert db.session.scalar(select(User).filter_by(username="keyboard.kim")).email == "kim@example.com"
