"""Where an admin lands and what they see first: one "is an admin" answer, the dashboard's scope."""

from __future__ import annotations

import re

from portal.access import is_admin, is_superuser
from portal.auth.service import create_user
from portal.extensions import db
from portal.models import User

from .conftest import TEST_PASSWORD
from .test_access import _member


def _header_links(page: str) -> list[str]:
    """The link texts of the site header's main navigation, in order."""
    nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', page, re.S).group(1)
    return [re.sub(r"\s+", " ", text).strip() for text in re.findall(r"<a [^>]*>(.*?)</a>", nav, re.S)]


def test_a_superuser_group_member_lands_on_the_dashboard_and_sees_the_admin_links(app, client, auth):
    _member(app, "grouped", superuser_group=True)  # the account's own flag stays off
    with app.app_context():
        user = db.session.scalar(db.select(User).filter_by(username="grouped"))
        assert user.is_superuser is False
        assert is_superuser(user) and is_admin(user)

    landed = auth.login("grouped")
    assert landed.request.path == "/admin/"
    page = landed.get_data(as_text=True)
    assert _header_links(page) == ["Dashboard", "Invitations", "Users", "grouped"]
    assert client.get("/").headers["Location"] == "/admin/"
    assert "Go to the admin area" in client.get("/account/").get_data(as_text=True)

    users = client.get("/admin/users/").get_data(as_text=True)
    row = re.search(r"<tr>\s*<td><a [^>]*>grouped</a>(.*?)</td>", users, re.S).group(1)
    assert '<span class="badge">superuser</span>' in row
    with app.app_context():
        user_id = db.session.scalar(db.select(User.id).filter_by(username="grouped"))
    shown = client.get(f"/admin/users/{user_id}").get_data(as_text=True)
    assert re.search(r"<dt>Superuser</dt><dd>Yes, through the group grouped-group</dd>", shown)


def test_a_plain_user_lands_on_their_account_without_admin_links(app, client, auth, admin):
    with app.app_context():
        create_user(username="plain", email="plain@example.com", password=TEST_PASSWORD)
    landed = auth.login("plain")
    assert landed.request.path == "/account/"
    page = landed.get_data(as_text=True)
    assert _header_links(page) == ["plain"]
    assert "Go to the admin area" not in page
    assert client.get("/").headers["Location"] == "/account/"
    assert client.get("/admin/").status_code == 403


def test_an_invitations_admin_sees_only_the_links_they_may_follow(app, client, auth):
    _member(app, "inviter", permissions=["invitations:manage"])
    landed = auth.login("inviter")
    assert landed.request.path == "/admin/"
    assert _header_links(landed.get_data(as_text=True)) == ["Dashboard", "Invitations", "inviter"]


def test_the_account_flag_and_the_group_both_show_as_superuser(app, client, auth, admin):
    _member(app, "grouped", superuser_group=True)
    with app.app_context():
        create_user(username="plain", email="plain@example.com", password=TEST_PASSWORD)
    auth.login()
    users = client.get("/admin/users/").get_data(as_text=True)
    badges = {name: "badge\">superuser" in cells for name, cells in re.findall(
        r"<tr>\s*<td><a [^>]*>([^<]+)</a>(.*?)</td>", users, re.S)}
    assert badges == {"admin": True, "grouped": True, "plain": False}
    shown = client.get(f"/admin/users/{admin}").get_data(as_text=True)
    assert "<dt>Superuser</dt><dd>Yes (the account itself)</dd>" in shown
