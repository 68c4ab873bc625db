"""Forgot password? in a real browser: the sign-in page's link, the emailed link (over a real
SMTP server on loopback), a new password twice, signed in."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from portal.auth import service as accounts
from portal.extensions import db
from portal.flows.defaults import ensure_default_authentication_flow

from ..conftest import TEST_PASSWORD
from ..mailserver import drop, make_mail_app, smtp, text_of  # noqa: F401 (fixture)

pytestmark = pytest.mark.e2e

NEW_PASSWORD = "copper-harbour-violet-58"


@pytest.fixture
def app(tmp_path, smtp):  # noqa: F811 (fixture): the live server serves this app, with mail
    app = make_mail_app(tmp_path, smtp)
    with app.app_context():
        ensure_default_authentication_flow()
        accounts.create_user(username="rosa", email="rosa@example.com", password=TEST_PASSWORD)
        db.session.commit()
    yield app
    drop(app)


def _one_message(smtp):  # noqa: F811 (fixture)
    """The page queues the email in the outbox and delivers it once its response is closed, in
    the server's thread: wait for it (generously: the machine may be busy)."""
    deadline = time.monotonic() + 15
    while not smtp.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    [(recipients, message)] = smtp.messages
    return recipients, message


def test_forgot_password_email_link_new_password_signed_in(app, smtp, page, live_server):  # noqa: F811
    page.goto("/auth/login")
    page.get_by_role("link", name="Forgot password?").click()
    page.get_by_label("Email or username").fill("rosa")
    page.get_by_role("button").first.click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()

    recipients, message = _one_message(smtp)
    assert recipients == ["rosa@example.com"]
    link = re.search(r"http://127\.0\.0\.1:\d+/\S+/verify\?token=\S+", text_of(message)).group(0)
    page.goto(link)
    page.get_by_role("button", name="Confirm my address").click()
    page.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Password (repeat)").fill(NEW_PASSWORD)
    page.get_by_role("button").first.click()
    expect(page).to_have_url(f"{live_server}/account/")
    assert len(smtp.messages) == 1
