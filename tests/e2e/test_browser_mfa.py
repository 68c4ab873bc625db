"""An authenticator in a real browser: set it up from the account page, then be asked for a
code. Codes come from pyotp with the secret read through the service, as a phone would make them.

Until sign-in is a flow, "asked for a code" is a flow with an authenticator validate stage for
the signed-in person (what default-authentication-flow will run after the password).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from portal import mfa
from portal.auth.service import create_user
from portal.extensions import db
from portal.flows.defaults import ensure_default_authenticator_setup_flow
from portal.models import Flow, FlowAuthentication, FlowDesignation, User, utcnow

from ..conftest import TEST_PASSWORD
from ..flowkit import make_flow

pytestmark = pytest.mark.e2e


def test_set_up_an_authenticator_then_give_a_code(app, page, live_server, sign_in):
    with app.app_context():
        user_id = create_user(username="sam", email="sam@example.com", password=TEST_PASSWORD).id
        ensure_default_authenticator_setup_flow()
    make_flow(app, "mfa-check", [{"type": "authenticator_validate", "name": "mfa-check-v",
                                  "options": {"not_configured_action": "deny"}}],
              authentication=FlowAuthentication.REQUIRE_AUTHENTICATED)
    with app.app_context():
        db.session.scalar(select(Flow).filter_by(slug="mfa-check")).designation = \
            FlowDesignation.STAGE_CONFIGURATION
        db.session.commit()

    sign_in(page, "sam")
    expect(page).to_have_url(f"{live_server}/account/")
    page.get_by_role("link", name="Set up an authenticator").click()
    expect(page.get_by_role("heading", name="Set up an authenticator app")).to_be_visible()
    expect(page.locator(".qr-code svg")).to_be_visible()
    shown = page.locator("#totp-secret").inner_text().replace(" ", "")
    with app.app_context():
        device = mfa.list_devices(db.session.get(User, user_id))[0]
        secret = mfa.secret_of(device)
    assert shown == secret and len(secret) == 32
    totp = pyotp.TOTP(secret)

    page.get_by_label("Code from the app").fill(totp.now())
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    page.get_by_role("button", name="I have saved them, continue").click()
    expect(page).to_have_url(f"{live_server}/account/")
    expect(page.locator("#recovery-left")).to_have_text("10")
    expect(page.get_by_role("button", name="Remove")).to_be_visible()

    page.goto("/if/flow/mfa-check/")
    expect(page.get_by_role("heading", name="Two-step verification")).to_be_visible()
    page.get_by_label("Code from your authenticator app").fill("000000" if totp.now() != "000000"
                                                                else "111111")
    page.get_by_role("button", name="Verify").click()
    expect(page.locator("#code-error")).to_contain_text("That code is not right, or was used already.")
    # The first code was used by the setup; the next step's code is fresh (one step of drift
    # is accepted), so the test need not wait for the clock.
    page.get_by_label("Code from your authenticator app").fill(
        totp.at(utcnow() + timedelta(seconds=30)))
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(re.escape(f"{live_server}/account/") + "$"))
