"""How pages and emails word moments and durations (Babel, in English)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from portal.templating import humanize_delta, humanize_duration


@pytest.mark.parametrize("offset, words", [
    (timedelta(days=7), "in 7 days"),  # a P7D invitation, the moment it is made...
    (timedelta(days=7) - timedelta(minutes=1), "in 7 days"),  # ...and a minute later
    (timedelta(days=6, hours=13), "in 7 days"),  # rounded to the nearest day
    (timedelta(days=6, hours=11), "in 6 days"),
    (timedelta(days=13), "in 13 days"),
    (timedelta(days=14), "in 2 weeks"),
    (timedelta(hours=36), "in 36 hours"),
    (timedelta(minutes=90), "in 90 minutes"),
    (timedelta(seconds=30), "in 30 seconds"),
    (-timedelta(hours=3), "3 hours ago"),
    (-timedelta(days=1), "24 hours ago"),
])
def test_moments_are_worded_from_now(offset, words):
    # A second's slack the other way: the page is rendered a moment after the value was made.
    assert humanize_delta(datetime.now(UTC) + offset + timedelta(seconds=1)) == words


def test_no_moment_is_never():
    assert humanize_delta(None) == "never"


@pytest.mark.parametrize("duration, words", [
    (timedelta(minutes=45), "45 minutes"),
    (timedelta(minutes=90), "1 hour 30 minutes"),
    (timedelta(days=10), "10 days"),  # exact, never rounded to "1 week"
    (timedelta(days=1, minutes=1), "1 day 1 minute"),
    (timedelta(seconds=20), "20 seconds"),
])
def test_durations_are_exact(duration, words):
    assert humanize_duration(duration) == words


def test_a_p7d_invitation_page_says_in_7_days(app, client, auth, admin, make_invitation):
    invitation_id, _ = make_invitation(expires_in=timedelta(days=7))
    auth.login()
    page = client.get(f"/admin/invitations/{invitation_id}").get_data(as_text=True)
    expires = re.search(r"<dt>Expires</dt><dd>[^<]*\(([^)]*)\)</dd>", page).group(1)
    assert expires == "in 7 days"
