"""Sign-in, sign-out, the first admin's setup link and the create-admin command."""

from __future__ import annotations

import re

from sqlalchemy import select

from portal.extensions import db
from portal.models import User

from ..conftest import TEST_PASSWORD, sign_in, submit


def test_login_and_logout(client, auth, admin):
    assert "Dashboard" in auth.login().get_data(as_text=True)
    assert client.get("/admin/").status_code == 200
    assert "You are signed out." in auth.logout().get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_production_hashes_with_argon2id_at_the_rfc_9106_parameters(
        real_password_hashing, app, client, auth):
    """Every other test hashes at a tiny cost (conftest); this one with what production uses."""
    from argon2 import extract_parameters

    from portal.auth import service as accounts

    with app.app_context():
        user = accounts.create_user(username="admin", email="admin@example.com",
                                    password=TEST_PASSWORD, superuser=True)
        params = extract_parameters(user.password_hash)
    assert user.password_hash.startswith("$argon2id$")
    assert (params.time_cost, params.memory_cost, params.parallelism) == (3, 65536, 4)
    assert auth.login().request.path == "/t/default/admin/"
    auth.logout()
    assert "The username or password is not right." in auth.login(
        password="wrong-password").get_data(as_text=True)


def test_wrong_password_keeps_the_login(client, auth, admin):
    page = auth.login(password="wrong-password").get_data(as_text=True)
    assert "The username or password is not right." in page
    assert 'value="admin"' in page


def test_unknown_user_gets_the_same_message(client, auth):
    page = auth.login(login="nobody").get_data(as_text=True)
    assert "The username or password is not right." in page


def test_login_by_email_and_next_stays_on_site(client, admin):
    response = sign_in(client, "ADMIN@example.com", TEST_PASSWORD, follow_redirects=False,
                       next="/admin/users/")
    assert response.headers["Location"] == "/admin/users/"
    assert client.get("/auth/login").headers["Location"] == "/t/default/admin/"  # signed in: redirected
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        other = client.application.test_client()
        response = sign_in(other, "admin", TEST_PASSWORD, follow_redirects=False, next=target)
        assert response.headers["Location"] == "/t/default/admin/", target


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
    assert done.request.path == "/t/default/admin/"
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


# -- sign-in identifiers cannot be squatted ---------------------------------------------------

SQUAT = r'id="username-error">\s*A username may contain @ only if it is the email address of this account\.'


def _legacy_user(app, **columns) -> int:
    """A row as older versions could write it, straight into the database."""
    from portal.security.passwords import hash_password

    with app.app_context():
        user = User(attributes={}, password_hash=hash_password(TEST_PASSWORD), **columns)
        db.session.add(user)
        db.session.commit()
        return user.id


def _signed_in_as(client) -> str:
    return re.search(r"<dt>Username</dt><dd>([^<]*)</dd>",
                     client.get("/account/").get_data(as_text=True)).group(1)


def test_an_email_signs_in_its_owner_even_if_an_older_username_is_that_address(app, client):
    squatter = _legacy_user(app, username="victim@example.com", email="squatter@example.com")
    victim = _legacy_user(app, username="victim", email="victim@example.com")
    assert squatter < victim  # the squatter's account is the older one
    response = sign_in(client, "Victim@Example.com", TEST_PASSWORD,
                      follow_redirects=False)
    assert response.status_code == 302
    assert _signed_in_as(client) == "victim"


def test_a_username_signs_in_by_username_only(app, client):
    """A username is never compared with addresses, and an address never with usernames
    (except a legacy username that no account's address claims)."""
    _legacy_user(app, username="sam", email="sam@example.com")
    _legacy_user(app, username="old@legacy.example", email="")
    for login, expected in (("SAM", "sam"), ("sam@example.com", "sam"),
                            ("old@legacy.example", "old@legacy.example")):
        other = app.test_client()
        assert sign_in(other, login, TEST_PASSWORD,
                      follow_redirects=False).status_code == 302, login
        assert _signed_in_as(other) == expected
    from portal.auth import service

    with app.app_context():
        assert service.find_user("example.com") is None
        assert service.find_user("sam@") is None


def test_username_rule_without_http(app):
    from portal.auth import service

    with app.app_context():
        assert service.username_problem("bob@example.com", "BOB@example.com") is None
        assert service.username_problem("bob", "someone@example.com") is None
        assert "may contain @" in service.username_problem("bob@example.com", "eve@example.com")
        assert "may contain @" in service.username_problem("bob@example.com", "")
        assert service.username_problem("bob@example.com", None) is None  # address not known yet


def test_create_admin_refuses_a_username_that_is_another_address(app, runner):
    squat = runner.invoke(args=["create-admin", "--username", "ceo@example.com", "--email",
                                "eve@example.com", "--password", TEST_PASSWORD])
    assert squat.exit_code != 0 and "may contain @ only if" in squat.output
    own = runner.invoke(args=["create-admin", "--username", "eve@example.com", "--email",
                              "eve@example.com", "--password", TEST_PASSWORD])
    assert own.exit_code == 0, own.output
    with app.app_context():
        assert db.session.scalars(select(User.username)).all() == ["eve@example.com"]


def test_setup_link_refuses_a_username_that_is_another_address(app, client, runner):
    link = re.search(r"(/auth/setup\?token=\S+)", runner.invoke(args=["setup-link"]).output).group(1)
    page = submit(client, link, {"username": "ceo@example.com", "email": "root@example.com",
                                 "password": TEST_PASSWORD, "password_repeat": TEST_PASSWORD})
    assert re.search(SQUAT, page.get_data(as_text=True))
    with app.app_context():
        assert db.session.scalars(select(User)).all() == []


def test_admin_create_user_refuses_a_username_that_is_another_address(app, client, auth, admin):
    auth.login()
    page = submit(client, "/admin/users/new", {"username": "admin@example.com",
                                               "email": "eve@example.com"})
    assert re.search(SQUAT, page.get_data(as_text=True))
    own = submit(client, "/admin/users/new", {"username": "eve@example.com",
                                              "email": "eve@example.com"})
    assert "User eve@example.com created." in own.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalars(select(User.username).order_by(User.id)).all() == [
            "admin", "eve@example.com"]


LOOKALIKES = ["ceo\uff20example.com", "ceo\ufe6bexample.com", "\uff43\uff45\uff4f@example.com"]


def test_usernames_that_only_look_like_another_address_are_refused(app, client, auth, admin):
    """Fullwidth and small commercial at signs (and fullwidth letters) read as the real address
    in every list and email: the same rule as for "@"."""
    from portal.auth import service

    with app.app_context():
        for lookalike in LOOKALIKES:
            assert "may contain @" in service.username_problem(lookalike, "eve@example.com")
        assert service.username_problem("ceo\uff20example.com", "CEO@example.com") is None
    auth.login()  # the admin form's pattern lets fullwidth letters through, the rule does not
    page = submit(client, "/admin/users/new", {"username": LOOKALIKES[2], "email": "eve@example.com"})
    assert re.search(SQUAT, page.get_data(as_text=True))
    with app.app_context():
        assert db.session.scalars(select(User.username)).all() == ["admin"]


def test_a_username_prompt_of_any_type_and_fixed_data_follow_the_rule(app, client, admin,
                                                                     make_invitation):
    """The rule lives in the user write: a plain text prompt keyed `username`, or an
    invitation's fixed data, cannot name someone else's address either."""
    from ..conftest import path_of
    from ..flowkit import make_flow

    url = make_flow(app, "texty", [
        {"type": "prompt", "name": "texty-fields", "prompts": [
            {"field_key": "username", "type": "text", "required": True},
            {"field_key": "email", "type": "email", "required": True}]},
        {"type": "user_write", "name": "texty-write"}])
    for squat in ("Admin@Example.com", *LOOKALIKES):  # a text prompt has no pattern at all
        page = submit(app.test_client(), url, {"username": squat, "email": "eve@example.com"})
        assert re.search(SQUAT, page.get_data(as_text=True)), squat
    own = submit(app.test_client(), url, {"username": "Eve@Example.com", "email": "eve@example.com"})
    assert own.status_code == 200 and "Your account has been created" in own.get_data(as_text=True)
    make_flow(app, "fixedy", [
        {"type": "invitation", "name": "fixedy-invitation"},
        {"type": "prompt", "name": "fixedy-fields", "prompts": [
            {"field_key": "email", "type": "email", "required": True}]},
        {"type": "user_write", "name": "fixedy-write"}])
    _, link = make_invitation(flow_slug="fixedy", attributes={"username": "boss@example.com"})
    fixed = app.test_client()
    fixed.get(path_of(link))
    page = submit(fixed, "/if/flow/fixedy/", {"email": "mallory@example.com"})
    assert "may contain @ only if it is the email address of this account" in page.get_data(
        as_text=True)
    with app.app_context():
        assert sorted(db.session.scalars(select(User.username)).all()) == ["Eve@Example.com", "admin"]


def test_a_superuser_by_group_counts_as_an_admin_for_the_setup_link(app, runner):
    """The setup link is offered only while nobody may do everything, by flag or by group."""
    from portal.auth import service as accounts
    from portal.models import Group

    with app.app_context():
        owner = accounts.create_user(username="owner", email="owner@example.com", password=TEST_PASSWORD)
        assert accounts.admin_exists() is False
        owner.groups.append(Group(name="root-group", is_superuser=True, attributes={}))
        db.session.commit()
        assert accounts.admin_exists() is True
    result = runner.invoke(args=["seed"])
    assert result.exit_code == 0 and "setup?token" not in result.output
