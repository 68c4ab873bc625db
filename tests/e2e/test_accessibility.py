"""axe-core (bundled with axe-playwright-python, no CDN) on the wizard and the admin pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from portal.auth.service import issue_action_token
from portal.models import TokenPurpose

pytestmark = pytest.mark.e2e

BLOCKING = {"serious", "critical"}
AXE_OPTIONS = {"resultTypes": ["violations"],
               "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa",
                                                     "best-practice"]}}
FLOW_PATH = "/if/flow/default-enrollment-flow/"

_axe = Axe()

UNLABELLED_INPUTS_JS = """() => [...document.querySelectorAll("input, select, textarea")]
    .filter(el => !["hidden", "submit", "button", "reset", "image"].includes(el.type))
    .filter(el => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
                  && !el.getAttribute("aria-labelledby"))
    .map(el => el.outerHTML)"""


def check(page, what: str) -> None:
    """No serious or critical axe violation, and every visible input has a label."""
    violations = [v for v in _axe.run(page, options=AXE_OPTIONS).response["violations"]
                  if v["impact"] in BLOCKING]
    report = "\n".join(
        f"- {v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(" ".join(node["target"]) for node in v["nodes"][:5])
        for v in violations
    )
    assert not violations, f"axe on {what} ({page.url}):\n{report}"
    assert page.evaluate(UNLABELLED_INPUTS_JS) == [], f"unlabelled inputs on {what}"


def test_admin_pages_have_no_serious_accessibility_violation(app, admin, page, sign_in, make_invitation,
                                                             invitation_link):
    page.goto("/auth/login")
    check(page, "sign-in")
    page.get_by_role("button", name="Sign in").click()  # empty: errors shown
    expect(page.get_by_role("alert")).to_be_visible()
    check(page, "sign-in with errors")

    invitation_id, _ = make_invitation(name="for-axe", attributes={"team": "blue"})
    sign_in(page)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    check(page, "dashboard")
    for path, what in [
        ("/admin/invitations/", "invitation list"),
        (f"/admin/invitations/{invitation_id}", "invitation detail"),
        (f"/admin/invitations/{invitation_id}/edit", "invitation edit form"),
        (f"/admin/invitations/{invitation_id}/delete", "invitation delete confirmation"),
        ("/admin/invitations/new?mode=people", "invitation create form for specific people"),
        ("/admin/invitations/bulk", "bulk invite form"),
        (f"/admin/invitations/{invitation_id}/resend", "resend form"),
        ("/admin/users/", "user list"),
        ("/admin/users/new", "create user form"),
        ("/admin/access/", "groups and roles"),
        ("/admin/access/roles/new", "role form"),
        ("/admin/audit/", "audit log"),
        (f"/admin/users/{admin}", "user detail"),
        ("/account/", "account page"),
        ("/admin/invitations/999999", "not-found page"),
    ]:
        page.goto(path)
        check(page, what)

    page.goto("/admin/invitations/new")
    check(page, "invitation create form")
    page.get_by_label("Expires (UTC)").fill("")
    page.get_by_label("Attributes").fill("- not\n- an object\n")
    page.get_by_role("button", name="Create invitation").click()
    expect(page.get_by_role("alert")).to_contain_text("Expires")
    check(page, "invitation create form with errors")


def test_wizard_pages_have_no_serious_accessibility_violation(page, new_context, invitation_link):
    page.goto(invitation_link())
    check(page, "wizard step 1")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("alert")).to_be_visible()
    check(page, "wizard step 1 with errors")
    page.get_by_label("Username").fill("axe.user")
    page.get_by_label("Password", exact=True).fill("violet-kettle-harbour-42")
    page.get_by_label("Password (repeat)").fill("violet-kettle-harbour-42")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_text("Step 2 of 2", exact=True)).to_be_visible()
    check(page, "wizard step 2")
    page.get_by_label("Email").fill("not an address")
    page.get_by_role("button", name="Finish").click()
    expect(page.get_by_role("alert")).to_be_visible()
    check(page, "wizard step 2 with errors")

    stranger = new_context().new_page()
    stranger.goto(f"{FLOW_PATH}?itoken=not-a-real-token")
    check(stranger, "invalid invitation page")


def test_first_admin_setup_page_has_no_serious_accessibility_violation(app, page):
    with app.app_context():
        token = issue_action_token(TokenPurpose.SETUP, timedelta(hours=1))
    page.goto(f"/auth/setup?token={token}")
    check(page, "first-admin setup")
    page.get_by_label("Email").fill("not an address")
    page.get_by_role("button", name="Create admin account").click()
    expect(page.get_by_role("alert")).to_be_focused()
    check(page, "first-admin setup with errors")


def test_acceptance_and_account_invitations_have_no_serious_accessibility_violation(
        app, page, sign_in, invitation_link):
    from ..helpers import existing_user

    existing_user(app, "sam")
    link = invitation_link(name="Join the team", email="sam@example.com")
    sign_in(page, "sam")
    expect(page.locator("#invitations")).to_contain_text("Join the team")
    check(page, "account page with a pending invitation")
    page.goto(link)
    expect(page.get_by_role("button", name="Accept")).to_be_visible()
    check(page, "acceptance page")
