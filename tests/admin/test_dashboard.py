"""What a new admin hits first: where they land (one "is an admin" answer), the dashboard's scope,
and the create-invitation form's two modes."""

from __future__ import annotations

import re

from portal.access import is_admin, is_superuser
from portal.auth.service import create_user
from portal.extensions import db
from portal.models import Invitation, User

from ..conftest import TEST_PASSWORD, numbers_in, sign_in, submit
from ..helpers import future_input, make_member


def _header_links(page: str) -> list[str]:
    """The link texts of the site header's main navigation, in order."""
    nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', page, re.S).group(1)
    return [re.sub(r"\s+", " ", text).strip() for text in re.findall(r"<a [^>]*>(.*?)</a>", nav, re.S)]


def test_a_superuser_group_member_lands_on_the_dashboard_and_sees_the_admin_links(app, client, auth):
    make_member(app, "grouped", superuser_group=True)  # the account's own flag stays off
    with app.app_context():
        user = db.session.scalar(db.select(User).filter_by(username="grouped"))
        assert user.is_superuser is False
        assert is_superuser(user) and is_admin(user)

    landed = auth.login("grouped")
    assert landed.request.path == "/t/default/admin/"
    page = landed.get_data(as_text=True)
    assert _header_links(page) == ["Dashboard", "Invitations", "Users", "grouped"]
    assert client.get("/").headers["Location"] == "/t/default/admin/"
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
    make_member(app, "inviter", permissions=["invitations:manage"])
    landed = auth.login("inviter")
    assert landed.request.path == "/t/default/admin/"
    assert _header_links(landed.get_data(as_text=True)) == ["Dashboard", "Invitations", "inviter"]


def test_the_account_flag_and_the_group_both_show_as_superuser(app, client, auth, admin):
    make_member(app, "grouped", superuser_group=True)
    with app.app_context():
        create_user(username="plain", email="plain@example.com", password=TEST_PASSWORD)
    auth.login()
    users = client.get("/admin/users/").get_data(as_text=True)
    badges = {name: "badge\">superuser" in cells for name, cells in re.findall(
        r"<tr>\s*<td><a [^>]*>([^<]+)</a>(.*?)</td>", users, re.S)}
    assert badges == {"admin": True, "grouped": True, "plain": False}
    shown = client.get(f"/admin/users/{admin}").get_data(as_text=True)
    assert "<dt>Superuser</dt><dd>Yes (the account itself)</dd>" in shown


def _stat(page: str, label: str) -> int | None:
    """The number of a dashboard tile (None when the tile is not shown)."""
    return numbers_in(page, f'<span class="stat-value">{{}}</span> {label}')


def _recent(page: str) -> list[tuple[str, str]]:
    """(user, invitation) of each row of "Recent enrollments"."""
    section = page.split("<h2>Recent enrollments</h2>", 1)[1]
    return [(re.sub(r"<[^>]+>", "", user).strip(), re.sub(r"<[^>]+>", "", invitation).strip())
            for user, invitation in re.findall(r"<tr>\s*<td>(.*?)</td>\s*<td>(.*?)</td>", section, re.S)]


def test_the_dashboard_counts_only_what_a_namespace_limited_admin_may_see(app, client, auth, admin,
                                                                         make_invitation):
    from datetime import timedelta

    from portal.models import Flow, FlowDesignation, Invitation, InvitationUse, utcnow

    with app.app_context():
        db.session.add(Flow(slug="sales-team", name="Sales", title="Join sales",
                            designation=FlowDesignation.ENROLLMENT))
        db.session.commit()
    sales = [make_invitation(name=f"sales-{n}", flow_slug="sales-team")[0] for n in range(2)]
    other = [make_invitation(name=f"other-{n}")[0] for n in range(3)]
    make_invitation(name="sales-expired", flow_slug="sales-team", expires_in=timedelta(seconds=-1))
    with app.app_context():
        for number, (invitation_id, username) in enumerate(
                [(sales[0], "sally"), (other[0], "olga"), (other[1], "oscar")]):
            user = create_user(username=username, email=f"{username}@example.com",
                               password=TEST_PASSWORD)
            invitation = db.session.get(Invitation, invitation_id)
            invitation.use_count += 1  # multi-use: still pending
            db.session.add(InvitationUse(invitation=invitation, user=user,
                                         used_at=utcnow() - timedelta(minutes=number)))
        db.session.commit()
    make_member(app, "seller", permissions=["invitations:manage"], namespaces=["sales"])

    auth.login("seller")
    page = client.get("/admin/").get_data(as_text=True)
    assert _stat(page, "pending invitations") == 2
    assert _stat(page, "users") is None and _stat(page, "flows") is None
    assert _recent(page) == [("sally", "sales-0")]

    auth.logout()
    auth.login()  # the superuser sees every namespace
    page = client.get("/admin/").get_data(as_text=True)
    assert _stat(page, "pending invitations") == 5
    assert _stat(page, "users") == 5  # admin, seller and the three who enrolled
    assert _recent(page) == [("sally", "sales-0"), ("olga", "other-0"), ("oscar", "other-1")]


def test_an_admin_without_invitations_sees_no_enrollments(app, client, auth, admin, make_invitation):
    make_invitation(name="someone's")
    make_member(app, "auditor", permissions=["audit:view"])
    auth.login("auditor")
    page = client.get("/admin/").get_data(as_text=True)
    assert _stat(page, "pending invitations") is None
    assert "Recent enrollments" not in page


# -- the create form: one mode at a time ---------------------------------------------------------


def _mode_of(page: str) -> tuple[str, str]:
    """(the tab marked current, the kind the form posts)."""
    tab = re.search(r'<nav class="tabs"[^>]*>.*?<a href="[^"]*" aria-current="page">([^<]+)</a>',
                    page, re.S).group(1)
    kind = re.search(r'<input[^>]*name="kind"[^>]*>', page).group(0)
    assert 'type="hidden"' in kind
    return tab, re.search(r'value="([^"]*)"', kind).group(1)


def _fields(page: str) -> set[str]:
    form = re.search(r'<form method="post" novalidate class="card">(.*?)</form>', page, re.S).group(1)
    return set(re.findall(r'<(?:input|textarea|select)[^>]*name="([^"]+)"', form)) - {"csrf_token", "submit"}


# (No groups exist in these tests, so the groups field has no checkboxes.)
LINK_FIELDS = {"kind", "name", "expires", "flow", "attributes", "single_use", "max_uses",
               "allowed_domains"}
PEOPLE_FIELDS = {"kind", "to", "cc", "bcc", "name", "expires", "flow", "attributes", "message"}


def test_without_a_mail_server_the_form_opens_on_the_shareable_link(app, client, auth, admin):
    auth.login()
    page = client.get("/admin/invitations/new").get_data(as_text=True)
    assert _mode_of(page) == ("One link to share", "link")
    assert _fields(page) == LINK_FIELDS  # no To, CC or BCC
    assert 'href="/t/default/admin/invitations/new?mode=people"' in page
    # authentik's documented steps: Name, Expires, Flow, Attributes, Single use, Create.
    created = submit(client, "/admin/invitations/new", {
        "kind": "link", "name": "first-try", "expires": future_input(), "flow": "1",
        "attributes": "department: Research", "single_use": "y"})
    html = created.get_data(as_text=True)
    assert created.request.path.startswith("/t/default/admin/invitations/") and "Invitation created" in html
    assert re.search(r'id="invitation-link"[^>]*value="http://portal\.test/if/flow/'
                     r'default-enrollment-flow/\?itoken=', html)
    with app.app_context():
        invitation = db.session.scalar(db.select(Invitation).filter_by(name="first-try"))
        assert (invitation.single_use, invitation.email, invitation.attributes) == (
            True, None, {"department": "Research"})
    # Specific people is one click away, and shows only its own fields.
    people = client.get("/admin/invitations/new?mode=people").get_data(as_text=True)
    assert _mode_of(people) == ("Specific people", "recipients")
    assert _fields(people) == PEOPLE_FIELDS
    # Without a mail server the next visit opens on the link again.
    assert _mode_of(client.get("/admin/invitations/new").get_data(as_text=True))[1] == "link"


def test_with_a_mail_server_the_form_remembers_the_admins_last_choice(app_factory):
    app = app_factory(MAIL_SERVER="127.0.0.1")
    with app.app_context():
        create_user(username="admin", email="admin@example.com", password=TEST_PASSWORD,
                    superuser=True)
    client = app.test_client()
    sign_in(client, "admin", TEST_PASSWORD)
    new = "/admin/invitations/new"
    assert _mode_of(client.get(new).get_data(as_text=True))[1] == "recipients"
    assert _mode_of(client.get(f"{new}?mode=link").get_data(as_text=True))[1] == "link"
    assert _mode_of(client.get(new).get_data(as_text=True))[1] == "link"  # the tab chosen
    submit(client, new, {"kind": "link", "name": "shared", "expires": future_input(), "flow": "1"})
    assert _mode_of(client.get(new).get_data(as_text=True))[1] == "link"  # the kind created
    assert _mode_of(client.get(f"{new}?mode=people").get_data(as_text=True))[1] == "recipients"
    assert _mode_of(client.get(new).get_data(as_text=True))[1] == "recipients"


def test_a_post_without_a_mode_or_in_people_mode_without_addresses(app, client, auth, admin):
    auth.login()
    # No mode (a script, an older page): a link, as before.
    submit(client, "/admin/invitations/new", {"name": "scripted", "expires": future_input(), "flow": "1"})
    # People mode still asks for an address, on the people tab.
    page = submit(client, "/admin/invitations/new", {"kind": "recipients", "expires": future_input(),
                                                     "flow": "1"}).get_data(as_text=True)
    assert "Enter at least one address" in page
    assert _mode_of(page) == ("Specific people", "recipients")
    with app.app_context():
        assert db.session.scalars(db.select(Invitation.name)).all() == ["scripted"]


def test_duplicating_opens_on_the_sources_mode(app, client, auth, admin, make_invitation):
    personal, _ = make_invitation(name="for-nia", email="nia@example.com")
    shared, _ = make_invitation(name="for-all", single_use=True)
    auth.login()
    page = client.get(f"/admin/invitations/new?from={personal}").get_data(as_text=True)
    assert _mode_of(page) == ("Specific people", "recipients") and "nia@example.com" in page
    page = client.get(f"/admin/invitations/new?from={shared}").get_data(as_text=True)
    assert _mode_of(page) == ("One link to share", "link")
    assert re.search(r'<input[^>]*checked[^>]*name="single_use"|name="single_use"[^>]*checked', page)
    # The other tab keeps the source's settings.
    assert f'href="/t/default/admin/invitations/new?mode=people&amp;from={shared}"' in page
