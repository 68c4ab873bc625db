"""The whole path, through the test client with CSRF on: admin invites, invitee enrolls."""

from __future__ import annotations

import re

from sqlalchemy import func, select, update

from portal.extensions import db
from portal.models import FlowSession, Invitation, InvitationUse, User, utcnow
from portal.security.passwords import verify_password

from ..conftest import csrf_from, numbers_in, path_of, sign_in_page, submit
from ..helpers import NEW_PASSWORD, complete_wizard


def test_admin_invites_and_invitee_enrolls(app, client, auth, admin):
    assert "Dashboard" in auth.login().get_data(as_text=True)

    form_page = client.get("/admin/invitations/new").get_data(as_text=True)
    assert 'name="expires"' in form_page and "default-enrollment-flow" in form_page
    flow_id = re.search(r'<option [^>]*value="(\d+)"[^>]*>Default enrollment', form_page).group(1)
    created = submit(client, "/admin/invitations/new", {
        "name": "welcome-nia",
        "expires": re.search(r'name="expires"[^>]*value="([^"]+)"', form_page).group(1),
        "flow": flow_id,
        "attributes": "department: Research\nlocation:\n  city: Oslo\n",
        "single_use": "y",
    })
    html = created.get_data(as_text=True)
    assert "Invitation created" in html
    link = re.search(r'id="invitation-link" type="text" readonly value="([^"]+)"', html).group(1)
    assert link.startswith("http://portal.test/if/flow/default-enrollment-flow/?itoken=")
    assert "data-copy-target" in html

    invitee = app.test_client()
    done = complete_wizard(invitee, path_of(link))
    assert done.request.path == "/account/"
    assert "Welcome, Nia Newbie!" in done.get_data(as_text=True)

    with app.app_context():
        user = db.session.scalar(select(User).filter_by(username="newbie"))
        assert user.email == "nia@example.com" and user.name == "Nia Newbie"
        assert user.attributes == {"department": "Research", "location": {"city": "Oslo"}}
        assert user.password_hash.startswith("$argon2id$")
        assert verify_password(user.password_hash, NEW_PASSWORD)
        assert user.last_login is not None
        invitation = db.session.scalar(select(Invitation).filter_by(name="welcome-nia"))
        assert invitation.use_count == 1
        assert [u.user_id for u in invitation.uses] == [user.id]

    # The admin sees who used it; the link is no longer offered.
    detail = client.get(f"/admin/invitations/{invitation.id}").get_data(as_text=True)
    assert "newbie" in detail and "Accepted" in detail and "itoken=" not in detail


def test_attributes_prefill_and_are_fixed(app, client, make_invitation):
    _, link = make_invitation(attributes={"email": "fixed@example.com", "team": "blue"})
    client.get(path_of(link))
    submit(client, "/if/flow/default-enrollment-flow/", {
        "username": "fixie", "password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD,
    })
    page = client.get("/if/flow/default-enrollment-flow/").get_data(as_text=True)
    email_input = re.search(r'<input[^>]*name="email"[^>]*>', page).group(0)
    assert 'value="fixed@example.com"' in email_input and "readonly" in email_input
    # A hand-made POST cannot change a value the invitation fixed.
    submit(client, "/if/flow/default-enrollment-flow/", {"name": "Fi", "email": "evil@example.com"})
    with app.app_context():
        user = db.session.scalar(select(User).filter_by(username="fixie"))
        assert user.email == "fixed@example.com"
        assert user.attributes == {"team": "blue"}


def test_password_never_stored_in_plaintext_between_steps(app, client, make_invitation):
    _, link = make_invitation()
    client.get(path_of(link))
    submit(client, "/if/flow/default-enrollment-flow/", {
        "username": "careful", "password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD,
    })
    with app.app_context():
        flow_session = db.session.scalar(select(FlowSession))
        assert NEW_PASSWORD not in str(flow_session.prompt_data)
        assert flow_session.password_hash.startswith("$argon2id$")
        assert flow_session.prompt_data["username"] == "careful"


def test_passwords_that_differ_keep_the_username(client, make_invitation):
    _, link = make_invitation()
    client.get(path_of(link))
    page = submit(client, "/if/flow/default-enrollment-flow/", {
        "username": "typo", "password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD + "x",
    }).get_data(as_text=True)
    assert "The passwords do not match." in page
    assert re.search(r'name="username"[^>]*value="typo"', page)
    assert 'aria-describedby="password_repeat-error"' in page
    assert numbers_in(page, "Step {} of {}") == (1, 2)


def test_password_policy(client, make_invitation):
    _, link = make_invitation()
    client.get(path_of(link))
    for password, message in [
        ("short1", "Use at least 8 characters."),
        ("password123", "too common"),
        ("x" * 129, "Use at most 128 characters."),
        ("typo-user", "must not be your username"),
    ]:
        page = submit(client, "/if/flow/default-enrollment-flow/", {
            "username": "typo-user", "password": password, "password_repeat": password,
        }).get_data(as_text=True)
        assert message in page, password
    # 64+ characters are allowed.
    long_password = "correct horse battery staple " * 3
    page = submit(client, "/if/flow/default-enrollment-flow/", {
        "username": "typo-user", "password": long_password, "password_repeat": long_password,
    }).get_data(as_text=True)
    assert numbers_in(page, "Step {} of {}") == (2, 2)


def test_duplicate_username_any_case(app, client, admin, make_invitation):
    _, link = make_invitation()
    client.get(path_of(link))
    page = submit(client, "/if/flow/default-enrollment-flow/", {
        "username": "ADMIN", "password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD,
    }).get_data(as_text=True)
    assert "This username is already taken." in page
    assert re.search(r'name="username"[^>]*value="ADMIN"', page)


def test_invalid_email_is_refused_and_name_kept(client, make_invitation):
    _, link = make_invitation()
    client.get(path_of(link))
    submit(client, "/if/flow/default-enrollment-flow/", {
        "username": "mailer", "password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD,
    })
    page = submit(client, "/if/flow/default-enrollment-flow/",
                  {"name": "Mai Ler", "email": "not-an-address"}).get_data(as_text=True)
    assert "Enter a valid email address" in page
    assert re.search(r'name="name"[^>]*value="Mai Ler"', page)
    assert 'aria-invalid="true"' in page


def test_required_fields(client, make_invitation):
    _, link = make_invitation()
    client.get(path_of(link))
    page = submit(client, "/if/flow/default-enrollment-flow/", {
        "username": "", "password": "", "password_repeat": "",
    }).get_data(as_text=True)
    field_errors = re.findall(r'<p class="error" id="(\w+)-error">\s*This field is required\.', page)
    assert field_errors == ["username", "password", "password_repeat"]
    assert page.count("This field is required.") == 6  # and each again in the error summary


def test_username_taken_while_enrolling_sends_back_to_first_page(app, client, make_invitation):
    """Two invitees pick the same name; the later one is sent back to choose another."""
    _, link = make_invitation()
    client.get(path_of(link))
    submit(client, "/if/flow/default-enrollment-flow/", {
        "username": "samename", "password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD,
    })
    with app.app_context():
        db.session.add(User(username="SameName", email="", attributes={}))
        db.session.commit()
    page = submit(client, "/if/flow/default-enrollment-flow/",
                  {"name": "Late", "email": "late@example.com"}).get_data(as_text=True)
    assert numbers_in(page, "Step {} of {}") == (1, 2) and "This username is already taken." in page
    with app.app_context():
        assert db.session.scalar(select(Invitation)).use_count == 0


def test_stale_page_post_does_not_skip_a_step(app, client, make_invitation):
    _, link = make_invitation()
    client.get(path_of(link))
    page = client.get("/if/flow/default-enrollment-flow/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/if/flow/default-enrollment-flow/", data={
        "csrf_token": token, "binding": "999999", "name": "x", "email": "x@example.com",
    }, follow_redirects=True)
    assert numbers_in(response.get_data(as_text=True), "Step {} of {}") == (1, 2)
    with app.app_context():
        assert db.session.scalar(select(InvitationUse)) is None


def test_unknown_flow_slug(client):
    response = client.get("/if/flow/no-such-flow/?itoken=abc")
    assert response.status_code == 404
    assert "This sign-up page does not exist" in response.get_data(as_text=True)


def test_post_without_a_session(app, client):
    """Never started: the flow starts with this POST, and its invitation stage refuses it."""
    page = sign_in_page(client)
    response = client.post("/if/flow/default-enrollment-flow/",
                           data={"csrf_token": csrf_from(page), "binding": "1"})
    assert response.status_code == 403
    assert "An invitation is required" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count(FlowSession.id))) == 0


def test_post_after_the_session_ended(app, client, make_invitation):
    _, link = make_invitation()
    page = client.get(path_of(link), follow_redirects=True).get_data(as_text=True)
    with app.app_context():
        db.session.execute(update(FlowSession).values(finished_at=utcnow()))
        db.session.commit()
    response = client.post("/if/flow/default-enrollment-flow/",
                           data={"csrf_token": csrf_from(page), "binding": "1"})
    assert response.status_code == 400
    assert "Open your invitation link again" in response.get_data(as_text=True)


def test_username_that_is_another_address_is_refused_in_the_wizard(app, client, make_invitation):
    """The address comes on page 2, so the user write checks and sends back to page 1."""
    _, link = make_invitation()
    client.get(path_of(link))
    submit(client, "/if/flow/default-enrollment-flow/", {
        "username": "boss@example.com", "password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD,
    })
    page = submit(client, "/if/flow/default-enrollment-flow/",
                  {"name": "Eve", "email": "eve@example.com"}).get_data(as_text=True)
    assert numbers_in(page, "Step {} of {}") == (1, 2)
    assert re.search(r'id="username-error">\s*A username may contain @ only if it is the email '
                     r'address of this account\.', page)
    with app.app_context():
        assert db.session.scalar(select(Invitation)).use_count == 0
        assert db.session.scalars(select(User.username)).all() == ["admin"]
    # Choosing a plain username (or the own address) then completes the enrollment.
    submit(client, "/if/flow/default-enrollment-flow/", {
        "username": "eve@example.com", "password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD,
    })
    done = submit(client, "/if/flow/default-enrollment-flow/", {"name": "Eve", "email": "eve@example.com"})
    assert done.request.path == "/account/"
    with app.app_context():
        assert db.session.scalar(select(Invitation)).use_count == 1


def test_username_that_is_another_address_is_refused_on_the_same_page(app, client):
    """With username and email on one prompt page, the page itself shows the error."""
    from portal.models import Flow, Prompt

    with app.app_context():
        flow = db.session.scalar(select(Flow).filter_by(slug="default-enrollment-flow"))
        username = db.session.scalar(select(Prompt).filter_by(field_key="username"))
        email = db.session.scalar(select(Prompt).filter_by(field_key="email"))
        username.stages[0].prompts.append(email)
        flow_slug = flow.slug
        db.session.commit()
    from portal.invitations import service

    with app.app_context():
        invitation = service.create_invitation(
            name="one-page", flow=db.session.scalar(select(Flow).filter_by(slug=flow_slug)),
            expires_at=None)
        link = path_of(service.invitation_link(invitation, "http://portal.test"))
    client.get(link)
    page = submit(client, f"/if/flow/{flow_slug}/", {
        "username": "boss@example.com", "email": "eve@example.com",
        "password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD,
    }).get_data(as_text=True)
    assert numbers_in(page, "Step {} of {}") == (1, 2)
    assert re.search(r'id="username-error">\s*A username may contain @ only if', page)
