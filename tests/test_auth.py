"""Sign-in, sign-out, the first admin's setup link and the create-admin command."""

from __future__ import annotations

import re

from sqlalchemy import select

from portal.extensions import db
from portal.models import User

from .conftest import TEST_PASSWORD, submit


def test_login_and_logout(client, auth, admin):
    assert "Dashboard" in auth.login().get_data(as_text=True)
    assert client.get("/admin/").status_code == 200
    assert "You are signed out." in auth.logout().get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_wrong_password_keeps_the_login(client, auth, admin):
    page = auth.login(password="wrong-password").get_data(as_text=True)
    assert "The username or password is not right." in page
    assert 'value="admin"' in page


def test_unknown_user_gets_the_same_message(client, auth):
    page = auth.login(login="nobody").get_data(as_text=True)
    assert "The username or password is not right." in page


def test_login_by_email_and_next_stays_on_site(client, admin):
    response = submit(client, "/auth/login?next=/admin/users/",
                      {"login": "ADMIN@example.com", "password": TEST_PASSWORD},
                      follow_redirects=False)
    assert response.headers["Location"] == "/admin/users/"
    client.get("/auth/login")  # signed in: redirected
    other = client.application.test_client()
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = submit(other, f"/auth/login?next={target}",
                          {"login": "admin", "password": TEST_PASSWORD}, follow_redirects=False)
        assert response.headers["Location"] == "/admin/", target
        other = client.application.test_client()


def test_logout_needs_post(client, auth, admin):
    auth.login()
    assert client.get("/auth/logout").status_code == 405
    assert client.get("/admin/").status_code == 200


def test_setup_link_creates_the_first_admin_once(app, client, runner):
    result = runner.invoke(args=["setup-link"])
    assert result.exit_code == 0, result.output
    link = re.search(r"(/auth/setup\?token=\S+)", result.output).group(1)
    page = client.get(link)
    assert "Create the first admin" in page.get_data(as_text=True)
    mismatch = submit(client, link, {"username": "root", "email": "root@example.com",
                                     "password": TEST_PASSWORD, "password_repeat": "other"})
    assert "The passwords do not match." in mismatch.get_data(as_text=True)
    done = submit(client, link, {"username": "root", "email": "root@example.com",
                                 "name": "Root", "password": TEST_PASSWORD,
                                 "password_repeat": TEST_PASSWORD})
    assert done.request.path == "/admin/"
    with app.app_context():
        assert db.session.scalar(select(User).filter_by(username="root")).is_superuser
    again = app.test_client().get(link)
    assert again.status_code == 404 and "setup link is not valid" in again.get_data(as_text=True)
    assert runner.invoke(args=["setup-link"]).exit_code != 0


def test_seed_prints_setup_link_only_without_admin(runner, admin):
    result = runner.invoke(args=["seed"])
    assert result.exit_code == 0
    assert "default-enrollment-flow" in result.output and "setup?token" not in result.output


def test_create_admin_command(app, runner):
    result = runner.invoke(args=["create-admin", "--username", "boss", "--email", "boss@example.com",
                                 "--password", TEST_PASSWORD])
    assert result.exit_code == 0, result.output
    weak = runner.invoke(args=["create-admin", "--username", "weak", "--email", "w@example.com",
                               "--password", "password"])
    assert weak.exit_code != 0 and "too common" in weak.output
    asked = runner.invoke(args=["create-admin", "--username", "asked", "--email", "a@example.com"],
                          input=f"{TEST_PASSWORD}\n{TEST_PASSWORD}\n")
    assert asked.exit_code == 0, asked.output
    duplicate = runner.invoke(args=["create-admin", "--username", "BOSS", "--email", "b@example.com",
                                    "--password", TEST_PASSWORD])
    assert duplicate.exit_code != 0 and "already taken" in duplicate.output
    with app.app_context():
        users = db.session.scalars(select(User).order_by(User.username)).all()
        assert [(u.username, u.is_superuser) for u in users] == [("asked", True), ("boss", True)]


def test_inactive_user_cannot_sign_in(app, auth, admin):
    with app.app_context():
        db.session.get(User, admin).active = False
        db.session.commit()
    assert "not right" in auth.login().get_data(as_text=True)
