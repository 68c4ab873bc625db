"""Sign-in sessions end when they should: a copied cookie dies with the session it came from."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal.audit import Action
from portal.auth import service as accounts
from portal.extensions import db
from portal.models import AuditEvent, TokenPurpose, User

from ..conftest import TEST_PASSWORD, csrf_from, submit
from ..helpers import replaying_client, signed_in

NEW_PASSWORD = "quiet-lantern-meadow-77"
DAY = 24 * 3600


class StolenCookie:
    """A copy of a browser's session cookie, replayed as it was copied (a thief ignores the
    cookies the server sends back)."""

    def __init__(self, client):
        self.app = client.application
        self.value = client.get_cookie("session", domain="portal.test").value

    def get(self, path):
        replay = self.app.test_client()
        replay.set_cookie("session", self.value, domain="portal.test")
        return replay.get(path)


def copy_of(client) -> StolenCookie:
    return StolenCookie(client)




def is_signed_in(client, path="/account/") -> bool:
    response = client.get(path)
    if response.status_code == 302:
        assert response.headers["Location"].startswith("/auth/login")
        return False
    assert response.status_code == 200
    return True


def _member(app, username="sam", email="sam@example.com"):
    with app.app_context():
        return accounts.create_user(username=username, email=email, password=TEST_PASSWORD).id


def _generation(app, user_id) -> int:
    with app.app_context():
        return db.session.get(User, user_id).session_generation


def test_a_session_keeps_working_until_it_ends(app, admin):
    client = signed_in(app)
    for path in ("/admin/", "/account/", "/admin/users/"):
        assert is_signed_in(client, path), path
    assert is_signed_in(copy_of(client), "/admin/")  # a copy works while the session lives...


def test_copied_cookie_stops_working_after_sign_out(app, admin):
    client = signed_in(app)
    thief = copy_of(client)
    assert is_signed_in(thief, "/admin/")
    assert "You are signed out." in submit(client, "/auth/logout", {},
                                          page_url="/account/").get_data(as_text=True)
    assert not is_signed_in(thief, "/admin/")
    assert not is_signed_in(client, "/admin/")
    assert _generation(app, admin) == 1


def test_copied_cookie_stops_working_after_password_change(app, admin):
    client = signed_in(app)
    thief = copy_of(client)
    page = submit(client, "/account/password", {
        "current_password": TEST_PASSWORD, "password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD,
    })
    assert "Your password is changed." in page.get_data(as_text=True)
    assert not is_signed_in(thief, "/admin/")
    assert is_signed_in(client, "/admin/")  # the browser that changed it stays signed in
    assert is_signed_in(signed_in(app, password=NEW_PASSWORD))
    with app.app_context():
        events = db.session.scalars(select(AuditEvent.action).filter_by(
            action=Action.PASSWORD_CHANGED)).all()
        assert events == [Action.PASSWORD_CHANGED]


def test_wrong_current_password_changes_nothing(app, admin):
    client = signed_in(app)
    thief = copy_of(client)
    page = submit(client, "/account/password", {
        "current_password": "not-my-password", "password": NEW_PASSWORD,
        "password_repeat": NEW_PASSWORD,
    }).get_data(as_text=True)
    assert "Your current password is not right." in page
    assert is_signed_in(thief) and _generation(app, admin) == 0
    assert is_signed_in(signed_in(app, password=TEST_PASSWORD))


def test_copied_cookie_stops_working_after_a_set_password_link(app, admin):
    """The reset path: whoever uses a set-password link ends every earlier session."""
    client = signed_in(app)
    thief = copy_of(client)
    with app.app_context():
        user = db.session.get(User, admin)
        token = accounts.issue_action_token(TokenPurpose.SET_PASSWORD, timedelta(hours=1), user=user)
    fresh = app.test_client()
    page = submit(fresh, f"/auth/set-password?token={token}",
                  {"password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD})
    assert "Your password is set." in page.get_data(as_text=True)
    assert not is_signed_in(thief) and not is_signed_in(client)
    assert is_signed_in(fresh)  # the person who set it is signed in


def test_copied_cookie_stops_working_after_deactivation(app, admin):
    sam = _member(app)
    member = signed_in(app, login="sam")
    thief = copy_of(member)
    admin_client = signed_in(app)
    page = submit(admin_client, f"/admin/users/{sam}/deactivate", {},
                  page_url=f"/admin/users/{sam}").get_data(as_text=True)
    assert "User sam is deactivated and signed out everywhere." in page
    assert not is_signed_in(thief) and not is_signed_in(member)
    # Activating the account again does not bring the old sessions back.
    page = submit(admin_client, f"/admin/users/{sam}/activate", {},
                  page_url=f"/admin/users/{sam}").get_data(as_text=True)
    assert "User sam is active again." in page
    assert not is_signed_in(thief)
    assert is_signed_in(signed_in(app, login="sam"))


def test_deactivation_by_a_plain_user_admin_spares_superusers_and_oneself(app, admin):
    from portal.access import USERS_MANAGE
    from portal.models import Group, Role

    helper = _member(app, "helper", "helper@example.com")
    with app.app_context():
        role = Role(name="user-admins", permissions=[USERS_MANAGE], namespaces=[])
        group = Group(name="user-admins", roles=[role], users=[db.session.get(User, helper)])
        db.session.add_all([role, group])
        db.session.commit()
    superuser = signed_in(app)
    client = signed_in(app, login="helper")
    page = submit(client, f"/admin/users/{admin}/deactivate", {},
                  page_url=f"/admin/users/{admin}").get_data(as_text=True)
    assert "Only a superuser may change a superuser&#39;s account." in page
    own = submit(client, f"/admin/users/{helper}/deactivate", {},
                 page_url=f"/admin/users/{admin}").get_data(as_text=True)
    assert "You cannot deactivate your own account." in own
    with app.app_context():
        assert db.session.get(User, admin).active and db.session.get(User, helper).active
    assert is_signed_in(superuser, "/admin/") and _generation(app, admin) == 0


def test_sign_out_everywhere_from_another_browser(app, admin):
    laptop = signed_in(app)
    thief = copy_of(laptop)
    phone = signed_in(app)
    page = submit(phone, "/account/sign-out-everywhere", {}, page_url="/account/")
    assert "You are signed out on every browser and device." in page.get_data(as_text=True)
    assert not is_signed_in(laptop) and not is_signed_in(thief) and not is_signed_in(phone)
    assert is_signed_in(signed_in(app))  # signing in again works as before


def test_sign_out_everywhere_needs_a_csrf_token(app, admin):
    client = signed_in(app)
    assert client.post("/account/sign-out-everywhere", data={}).status_code == 400
    assert is_signed_in(client) and _generation(app, admin) == 0


def _stamp(client, **ago):
    """Move the session's sign-in and last-seen times into the past, by seconds."""
    now = time.time()
    with client.session_transaction() as session:
        for key, seconds in ago.items():
            session[key] = now - seconds


def test_idle_timeout(app_factory):
    app = app_factory(SESSION_IDLE_TIMEOUT="PT10M")
    with app.app_context():
        accounts.create_user(username="admin", email="admin@example.com", password=TEST_PASSWORD)
    client = signed_in(app)
    _stamp(client, seen_at=9 * 60)
    assert is_signed_in(client)  # nine minutes idle: still on, and now seen again
    with client.session_transaction() as session:
        assert time.time() - session["seen_at"] < 5
    _stamp(client, seen_at=10 * 60 + 5)
    assert not is_signed_in(client)
    with client.session_transaction() as session:
        assert "_user_id" not in session and "signed_in_at" not in session


def test_absolute_timeout(app, admin):
    client = signed_in(app)  # default SESSION_ABSOLUTE_TIMEOUT is P1D
    _stamp(client, signed_in_at=DAY - 60)
    assert is_signed_in(client)
    _stamp(client, signed_in_at=DAY + 5, seen_at=0)  # in use a moment ago, but a day old
    assert not is_signed_in(client)


def test_last_seen_is_written_at_most_once_a_minute(app, admin):
    """No new cookie on every request: the session is re-signed only when something changed."""
    client = signed_in(app)
    client.get("/account/")  # the first page after sign-in adds a CSRF token
    for _ in range(3):
        assert "Set-Cookie" not in client.get("/account/").headers
    _stamp(client, seen_at=61)
    assert "session=" in client.get("/account/").headers["Set-Cookie"]


def test_sessions_without_generation_or_times_are_refused(app, admin):
    """Sessions signed before this rule (a bare id, no times) ask to sign in again."""
    client = signed_in(app)
    with client.session_transaction() as session:
        session["_user_id"] = str(admin)
    assert not is_signed_in(client)
    client = signed_in(app)
    with client.session_transaction() as session:
        del session["signed_in_at"]
    assert not is_signed_in(client)


def test_session_rules_without_http(app, admin):
    idle, absolute = timedelta(hours=2), timedelta(days=1)
    now = 1_000_000.0
    assert not accounts.session_expired(now - 100, now - 100, now, idle=idle, absolute=absolute)
    assert accounts.session_expired(now - 100, now - 7201, now, idle=idle, absolute=absolute)
    assert accounts.session_expired(now - DAY - 1, now, now, idle=idle, absolute=absolute)
    assert accounts.session_expired(None, now, now, idle=idle, absolute=absolute)
    assert accounts.session_expired(True, True, now, idle=idle, absolute=absolute)
    with app.app_context():
        user = db.session.get(User, admin)
        assert user.get_id() == f"{admin}:0"
        assert accounts.load_user(f"{admin}:0") is user
        accounts.end_sessions(user)
        db.session.commit()
        assert accounts.load_user(f"{admin}:0") is None
        assert accounts.load_user(f"{admin}:1") is user
        for bad in (str(admin), f"{admin}:", f"x:{admin}", "", f"{admin}:1:2"):
            assert accounts.load_user(bad) is None, bad


# -- every kind of page: a copied cookie opens none of them once its session has ended --------------




def _ended(app, how: str, client, user_id: int):
    """End the session `client` holds, one of the ways a session ends."""
    if how == "sign-out":
        submit(client, "/auth/logout", {}, page_url="/account/")
    elif how == "everywhere":
        submit(client, "/account/sign-out-everywhere", {}, page_url="/account/")
    elif how == "password":
        submit(client, "/account/password", {"current_password": TEST_PASSWORD,
                                              "password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD})
    elif how == "deactivated":
        with app.app_context():
            accounts.set_active(db.session.get(User, user_id), False, actor=db.session.get(
                User, accounts.find_user("root").id))


@pytest.mark.parametrize("how", ["sign-out", "everywhere", "password", "deactivated"])
def test_copied_cookie_opens_no_download_json_slice_or_admin_page(app, how):
    from portal.models import Invitation

    with app.app_context():
        accounts.create_user(username="root", email="root@example.com", password=TEST_PASSWORD,
                             superuser=True)
        admin_id = accounts.create_user(username="ops", email="ops@example.com",
                                        password=TEST_PASSWORD, superuser=True).id
    client = signed_in(app, login="ops")
    thief = replaying_client(client)
    bulk_page = thief.get("/admin/invitations/bulk").get_data(as_text=True)  # a token, while valid
    assert thief.get("/admin/audit/export.csv").status_code == 200
    _ended(app, how, client, admin_id)
    for path in ("/admin/", "/account/", "/admin/invitations/links.csv", "/admin/audit/export.csv",
                 "/admin/users/", "/account/password"):
        response = thief.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/auth/login"), path
    from ..helpers import future_input

    slice_ = thief.post("/admin/invitations/bulk", headers={"Accept": "application/json"}, data={
        "csrf_token": csrf_from(bulk_page), "text": "stolen@example.com", "flow": "1",
        "expires": future_input(), "confirm": "Create", "start": "0", "count": "200"})
    assert slice_.status_code in (302, 400) and b"created" not in slice_.data
    with app.app_context():
        assert db.session.scalar(select(func.count(Invitation.id))) == 0


def _members_flow(app, authentication) -> str:
    """A two-page flow for signed-in people: a question, then terms whose acceptance is stored."""
    from ..flowkit import make_flow

    url = make_flow(app, "members", [
        {"type": "prompt", "name": "members-question",
         "prompts": [{"field_key": "answer", "type": "text", "required": True}]},
        {"type": "consent", "name": "members-terms", "options": {"consent_text": "House rules."}},
    ], authentication=authentication)
    return url


ENDINGS = ["sign-out", "everywhere", "password", "deactivated"]


@pytest.mark.parametrize("authentication,how", [
    *((rule, how) for rule in ("require_authenticated", "require_superuser") for how in ENDINGS),
    ("require_superuser", "demoted"),  # still signed in, but no longer in the superuser group
])
def test_copied_cookie_cannot_go_on_with_a_flow_that_needs_a_sign_in(app, how, authentication):
    """The flow session the signed-in person started is in the copied cookie too: neither its
    page nor its form may be used once the sign-in ended (or no longer makes a superuser)."""
    from portal.models import ConsentRecord, Group

    with app.app_context():
        accounts.create_user(username="root", email="root@example.com", password=TEST_PASSWORD,
                             superuser=True)
        staff = Group(name="staff", is_superuser=True)
        user = User(username="ops", email="ops@example.com", attributes={}, groups=[staff],
                    password_hash=accounts.hash_password(TEST_PASSWORD))
        db.session.add(user)
        db.session.commit()
        user_id = user.id
    url = _members_flow(app, authentication)
    client = signed_in(app, login="ops")
    first = submit(client, url, {"answer": "forty-two"})
    html = first.get_data(as_text=True)
    assert first.status_code == 200 and "House rules." in html, html
    terms = {"csrf_token": csrf_from(html), "accept": "y",
             "binding": re.search(r'name="binding" value="(\d+)"', html).group(1)}
    thief = replaying_client(client)
    if how == "demoted":
        with app.app_context():
            db.session.get(User, user_id).groups = []
            db.session.commit()
    else:
        _ended(app, how, client, user_id)
    expected = "Administrators only" if how == "demoted" else "Sign in required"
    posted = thief.post(url, data=terms)
    assert posted.status_code == 403 and expected in posted.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count(ConsentRecord.id))) == 0
    shown = thief.get(url)
    assert shown.status_code in (403, 200) and "House rules." not in shown.get_data(as_text=True)
