"""The admin area through its HTML forms."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Invitation, User

from ..conftest import TEST_PASSWORD, numbers_in, sign_in, submit
from ..helpers import flow_option_id, future_input


def test_admin_pages_need_an_admin(app, client, auth, admin):
    response = client.get("/admin/invitations/")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
    with app.app_context():
        from portal.auth.service import create_user

        create_user(username="plain", email="plain@example.com", password=TEST_PASSWORD)
    auth.login("plain")
    response = client.get("/admin/invitations/")
    assert response.status_code == 403
    assert "You do not have permission" in response.get_data(as_text=True)


def test_expiry_is_prefilled_from_setting(tmp_path):
    from portal import create_app

    from ..conftest import database_url

    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url(tmp_path),
                      "INVITATION_EXPIRE_AFTER": "P3D"})
    with app.app_context():
        db.create_all()
        from portal.auth.service import create_user

        create_user(username="admin", email="a@example.com", password=TEST_PASSWORD, superuser=True)
    client = app.test_client()
    sign_in(client, "admin", TEST_PASSWORD)
    html = client.get("/admin/invitations/new").get_data(as_text=True)
    shown = re.search(r'name="expires"[^>]*value="([^"]+)"', html).group(1)
    expected = datetime.now(UTC) + timedelta(days=3)
    shown_at = datetime.strptime(shown, "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)
    assert abs(shown_at - expected) < timedelta(minutes=2)
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


def test_invalid_attributes_yaml_keeps_what_was_typed(app, client, auth, admin):
    auth.login()
    html = client.get("/admin/invitations/new").get_data(as_text=True)
    bad = "department: Sales\nteam: [unclosed\n"
    page = submit(client, "/admin/invitations/new", {
        "name": "typo-invite", "expires": future_input(), "flow": flow_option_id(html), "attributes": bad,
    }).get_data(as_text=True)
    assert numbers_in(page, "Line {}, column {}:") == (3, 1)  # where the YAML parser gave up
    assert "typo-invite" in page and "team: [unclosed" in page
    not_a_mapping = submit(client, "/admin/invitations/new", {
        "name": "list-invite", "expires": future_input(), "flow": flow_option_id(html),
        "attributes": "- a\n- b",
    }).get_data(as_text=True)
    assert "must be an object of key: value pairs, not a list" in not_a_mapping
    with app.app_context():
        assert db.session.scalar(select(func.count(Invitation.id))) == 0


def test_expiry_in_the_past_is_refused(app, client, auth, admin):
    auth.login()
    html = client.get("/admin/invitations/new").get_data(as_text=True)
    page = submit(client, "/admin/invitations/new", {
        "name": "late", "expires": future_input(-1), "flow": flow_option_id(html),
    }).get_data(as_text=True)
    assert "Choose a moment in the future." in page


def test_json_attributes_are_accepted(app, client, auth, admin):
    auth.login()
    html = client.get("/admin/invitations/new").get_data(as_text=True)
    submit(client, "/admin/invitations/new", {
        "name": "json", "expires": future_input(), "flow": flow_option_id(html),
        "attributes": '{"email": "j@example.com", "tags": ["a", "b"]}',
    })
    with app.app_context():
        invitation = db.session.scalar(select(Invitation))
        assert invitation.attributes == {"email": "j@example.com", "tags": ["a", "b"]}
        assert invitation.single_use is False


def test_forged_post_without_csrf_is_refused(app, client, auth, admin):
    auth.login()
    html = client.get("/admin/invitations/new").get_data(as_text=True)
    response = client.post("/admin/invitations/new", data={
        "name": "forged", "expires": future_input(), "flow": flow_option_id(html),
    })
    assert response.status_code == 400
    assert "The form expired" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count(Invitation.id))) == 0


def test_list_edit_show_link_again_and_delete(app, client, auth, admin, make_invitation):
    invitation_id, link = make_invitation(name="team-invite")
    auth.login()
    listing = client.get("/admin/invitations/").get_data(as_text=True)
    assert "team-invite" in listing and "Pending" in listing and "default-enrollment-flow" in listing

    # The link can be shown again later while the invitation is valid.
    detail = client.get(f"/admin/invitations/{invitation_id}").get_data(as_text=True)
    assert link.replace("&", "&amp;") in detail or link in detail

    edit_url = f"/admin/invitations/{invitation_id}/edit"
    html = client.get(edit_url).get_data(as_text=True)
    assert 'value="team-invite"' in html
    expires = re.search(r'name="expires"[^>]*value="([^"]+)"', html).group(1)
    submit(client, edit_url, {"name": "renamed", "expires": expires, "flow": flow_option_id(html),
                              "attributes": "team: red", "single_use": "y"})
    with app.app_context():
        invitation = db.session.get(Invitation, invitation_id)
        assert invitation.name == "renamed" and invitation.single_use
        assert invitation.attributes == {"team": "red"}

    confirm = client.get(f"/admin/invitations/{invitation_id}/delete").get_data(as_text=True)
    assert "Delete invitation “renamed”?" in confirm
    done = submit(client, f"/admin/invitations/{invitation_id}/delete", {})
    assert "deleted" in done.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Invitation, invitation_id) is None
    # GET never deletes.
    assert client.get(f"/admin/invitations/{invitation_id}/delete").status_code == 404


def test_users_list_and_detail(app, client, auth, admin):
    auth.login()
    listing = client.get("/admin/users/?q=ada").get_data(as_text=True)
    assert "admin@example.com" in listing
    assert "No users found" in client.get("/admin/users/?q=zzz").get_data(as_text=True)
    with app.app_context():
        user_id = db.session.scalar(select(User.id))
    detail = client.get(f"/admin/users/{user_id}").get_data(as_text=True)
    assert "Ada Admin" in detail and "Last sign-in" in detail


def test_unknown_invitation_is_a_404_page(client, auth, admin):
    auth.login()
    response = client.get("/admin/invitations/9999")
    assert response.status_code == 404
    assert "Page not found" in response.get_data(as_text=True)
