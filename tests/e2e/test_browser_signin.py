"""Signing in through the sign-in flow in a real browser: who, then the password, then the page
asked for; an unknown account and a wrong password read the same."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from ..conftest import TEST_PASSWORD

pytestmark = pytest.mark.e2e

WRONG = "The username or password is not right."


def test_sign_in_through_the_flow_keeps_next_and_never_tells_which_accounts_exist(
        app, admin, page):
    for login in ("nobody@example.com", "admin"):
        page.goto("/auth/login")
        page.get_by_label("Username or email").fill(login)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_text(f"Signing in as {login}")).to_be_visible()
        page.get_by_label("Password").fill("not-the-password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_text(WRONG, exact=True)).to_be_visible()

    page.goto("/admin/users/")  # signed out: sent to sign in, and back here afterwards
    assert "/if/flow/default-authentication-flow/?next=" in page.url
    page.get_by_label("Username or email").fill("ADMIN@example.com")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Users")).to_be_visible()
    assert page.url.endswith("/admin/users/")
