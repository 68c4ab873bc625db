"""Roles bound to groups decide what the admin area lets a user do."""

from __future__ import annotations

import html
import re

from sqlalchemy import select

from portal.extensions import db
from portal.models import Flow, Group, Invitation, OIDCSource, Role, Stage, User

from ..conftest import submit
from ..helpers import future_input, make_member


def _admin_get_urls(app) -> list[tuple[str, str]]:
    """Every GET page of the admin area, with 1 for each id in the URL."""
    urls = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("admin.") and "GET" in rule.methods:
            path = re.sub(r"<any\(([^,)]+)[^>]*>", r"\1", rule.rule)  # the first choice
            path = path.replace("<tenant>", "default")
            urls.append((rule.endpoint, re.sub(r"<(?:int:)?[^>]+>", "1", path)))
    return urls


def test_only_invitations_permission_reaches_only_invitations(app, client, auth, admin,
                                                               make_invitation):
    make_invitation(name="someone's")
    make_member(app, "inviter", permissions=["invitations:manage"])
    response = auth.login("inviter")
    assert response.request.path == "/t/default/admin/"  # an admin of invitations lands on the dashboard
    nav = re.search(r'<nav class="admin-nav".*?</nav>', response.get_data(as_text=True), re.S).group(0)
    assert "Invitations" in nav
    assert "Users" not in nav and "Groups" not in nav and "Audit" not in nav

    allowed = {"admin.dashboard"}
    for endpoint, url in _admin_get_urls(app):
        status = client.get(url).status_code
        if endpoint.startswith("admin.invitation") or endpoint in allowed:
            assert status in (200, 302), (url, status)
        else:  # users, direct user creation, access, audit log, flows: all refused
            assert status == 403, (url, status)
    assert client.get("/admin/users/").status_code == 403
    assert client.get("/admin/users/new").status_code == 403
    # They can do their job: create an invitation.
    page = submit(client, "/admin/invitations/new", {
        "kind": "link", "name": "from-inviter", "flow": "1", "expires": future_input()})
    assert "Invitation created" in page.get_data(as_text=True)


def test_flow_administration_is_refused_without_its_permission(app, client, auth, admin):
    """Pages that have no finer permission (such as flow administration) stay superuser-only."""
    from flask import Blueprint

    from portal.admin import admins_only, permission_required

    probe = Blueprint("probe", __name__)

    @probe.route("/probe/flows")
    @permission_required("flows:manage")
    def flows_page():
        return "flows"

    @probe.route("/probe/superuser")
    @admins_only
    def superuser_page():
        return "superuser"

    app.register_blueprint(probe)
    make_member(app, "inviter", permissions=["invitations:manage"])
    auth.login("inviter")
    assert client.get("/probe/flows").status_code == 403
    assert client.get("/probe/superuser").status_code == 403
    for url in ("/admin/flows/", "/admin/stages/", "/admin/prompts/", "/admin/flows/import"):
        assert client.get(url).status_code == 403, url
    auth.logout()
    make_member(app, "flowed", permissions=["flows:manage"])
    auth.login("flowed")
    assert client.get("/probe/flows").status_code == 200
    for url in ("/admin/flows/", "/admin/stages/", "/admin/prompts/", "/admin/flows/import"):
        assert client.get(url).status_code == 200, url
    nav = re.search(r'<nav class="admin-nav".*?</nav>', client.get("/admin/flows/").get_data(as_text=True),
                    re.S).group(0)
    assert "Flows" in nav and "Invitations" not in nav
    assert client.get("/admin/invitations/").status_code == 403


def test_a_user_with_no_role_is_not_an_admin(app, client, auth, admin):
    make_member(app, "plain")
    assert auth.login("plain").request.path == "/account/"
    assert client.get("/admin/").status_code == 403


def test_superuser_group_grants_everything(app, client, auth, admin):
    make_member(app, "boss", superuser_group=True)
    auth.login("boss")
    for url in ("/admin/users/", "/admin/access/", "/admin/audit/", "/admin/invitations/"):
        assert client.get(url).status_code == 200, url


def test_namespaces_limit_a_role_to_their_flows(app, client, auth, admin, make_invitation):
    with app.app_context():
        default = db.session.scalar(select(Flow))
        sales = Flow(slug="sales.emea", name="Sales EMEA", designation="enrollment")
        db.session.add(sales)
        db.session.commit()
        sales_id = sales.id
        assert default.slug == "default-enrollment-flow"
    other_id, _ = make_invitation(name="default-flow-invitation")
    sales_invitation, _ = make_invitation(name="sales-invitation", flow_slug="sales.emea")
    make_member(app, "seller", permissions=["invitations:manage"], namespaces=["sales"])
    auth.login("seller")
    listing = client.get("/admin/invitations/").get_data(as_text=True)
    assert "sales-invitation" in listing and "default-flow-invitation" not in listing
    assert client.get(f"/admin/invitations/{other_id}").status_code == 404
    assert client.get(f"/admin/invitations/{sales_invitation}").status_code == 200
    form = client.get("/admin/invitations/new").get_data(as_text=True)
    assert "sales.emea" in form and "default-enrollment-flow" not in form
    refused = submit(client, "/admin/invitations/new", {
        "kind": "link", "name": "sneaky", "flow": "1", "expires": future_input()})
    assert "Not a valid choice" in refused.get_data(as_text=True)
    created = submit(client, "/admin/invitations/new", {
        "kind": "link", "name": "ok", "flow": str(sales_id), "expires": future_input()})
    assert "Invitation created" in created.get_data(as_text=True)


def test_an_inviter_cannot_hand_out_more_access_than_they_have(app, client, auth, admin):
    make_member(app, "inviter", permissions=["invitations:manage"])
    with app.app_context():
        admins = Group(name="admins", attributes={}, is_superuser=True)
        staff = Group(name="staff", attributes={})
        auditors = Group(name="auditors", attributes={},
                         roles=[Role(name="auditor", permissions=["audit:view"])])
        db.session.add_all([admins, staff, auditors])
        db.session.commit()
        ids = {g.name: g.id for g in (admins, staff, auditors)}
    auth.login("inviter")
    form = client.get("/admin/invitations/new").get_data(as_text=True)
    assert ">staff<" in form and ">admins<" not in form and ">auditors<" not in form
    submit(client, "/admin/invitations/new", {
        "kind": "link", "name": "escalate", "flow": "1", "expires": future_input(),
        "groups": [str(ids["admins"])]})
    with app.app_context():
        invitation = db.session.scalar(select(Invitation).filter_by(name="escalate"))
        assert invitation is None or invitation.groups == []


def test_groups_on_the_invitation_are_given_at_enrollment(app, client, auth, admin):
    from ..helpers import complete_wizard

    with app.app_context():
        db.session.add_all([Group(name="research", attributes={}), Group(name="oslo", attributes={})])
        db.session.commit()
        ids = [str(g.id) for g in db.session.scalars(select(Group).order_by(Group.name))]
    auth.login()
    page = submit(client, "/admin/invitations/new", {
        "kind": "link", "name": "with-groups", "flow": "1", "expires": future_input(), "groups": ids})
    link = re.search(r'id="invitation-link" type="text" readonly value="([^"]+)"',
                     page.get_data(as_text=True)).group(1)
    complete_wizard(app.test_client(), link.removeprefix("http://portal.test"))
    with app.app_context():
        user = db.session.scalar(select(User).filter_by(username="newbie"))
        assert [g.name for g in user.groups] == ["oslo", "research"]


def test_roles_and_groups_are_managed_in_the_admin(app, client, auth, admin):
    auth.login()
    submit(client, "/admin/access/groups/new", {"name": "helpdesk"})
    with app.app_context():
        group_id = db.session.scalar(select(Group.id).filter_by(name="helpdesk"))
    page = submit(client, "/admin/access/roles/new", {
        "name": "Inviter", "permissions": ["invitations:manage"], "namespaces": "sales, hr",
        "groups": [str(group_id)]})
    html = page.get_data(as_text=True)
    assert "Role “Inviter” saved" in html and "sales, hr" in html
    with app.app_context():
        role = db.session.scalar(select(Role))
        assert role.permissions == ["invitations:manage"] and role.namespaces == ["sales", "hr"]
        assert [g.name for g in role.groups] == ["helpdesk"]
    empty = submit(client, "/admin/access/roles/new", {"name": "Nothing"})
    assert "Choose at least one permission." in empty.get_data(as_text=True)


def test_every_admin_page_renders_for_a_superuser(app, client, auth, admin, make_invitation):
    """No admin page fails with data present (ids that do not exist answer 404, never 500)."""
    make_invitation(name="one", email="one@example.com")
    with app.app_context():
        group = Group(name="g", attributes={}, roles=[Role(name="r", permissions=["audit:view"])])
        db.session.add(group)
        db.session.add(OIDCSource(name="IdP", slug="idp", issuer="https://idp.example.com",
                                  client_id="portal"))
        db.session.commit()
    auth.login()
    for endpoint, url in _admin_get_urls(app):
        response = client.get(url)
        typed = "stages/new/" in url  # a stage type, not an id: "1" is no type
        assert response.status_code in ((200, 302, 404) if typed else (200, 302)), (
            endpoint, url, response.status_code)
        assert client.get(url.replace("/1", "/999")).status_code in (200, 302, 404), url


def test_a_namespace_limited_role_reaches_no_shared_admin_page(app, client, auth, admin):
    """Flows, stages, prompts and blueprints are shared between namespaces: "flows: manage" for
    one namespace does not open them (nor users, access or audit limited to a namespace)."""
    make_member(app, "salesflows", permissions=["flows:manage", "users:manage", "access:manage",
                                            "audit:view"], namespaces=["sales"])
    auth.login("salesflows")
    for url in ("/admin/flows/", "/admin/flows/1", "/admin/stages/", "/admin/prompts/",
                "/admin/flows/import", "/admin/flows/1/export", "/admin/users/", "/admin/access/",
                "/admin/audit/"):
        assert client.get(url).status_code == 403, url
    nav = re.search(r'<nav class="admin-nav".*?</nav>', client.get("/admin/").get_data(as_text=True),
                    re.S).group(0)
    assert "Stages" not in nav and "Groups" not in nav and "Audit" not in nav
    page = client.get("/admin/stages/new/deny")
    assert page.status_code == 403


def test_an_access_manager_cannot_grant_more_than_they_hold(app, client, auth, admin):
    make_member(app, "keeper", permissions=["access:manage", "invitations:manage"], namespaces=["sales"])
    with app.app_context():
        # Limited to "sales", access:manage would not even open the page: give it everywhere.
        db.session.add(Role(name="keeper-access", permissions=["access:manage"],
                            groups=[db.session.scalar(select(Group).filter_by(name="keeper-group"))]))
        audit = Role(name="auditor", permissions=["audit:view"])
        db.session.add_all([audit, Group(name="staff", attributes={})])
        db.session.commit()
        audit_id = audit.id
        staff = db.session.scalar(select(Group.id).filter_by(name="staff"))
    auth.login("keeper")
    for data in ({"name": "more", "permissions": ["users:manage"]},
                 {"name": "wider", "permissions": ["invitations:manage"]},
                 {"name": "elsewhere", "permissions": ["invitations:manage"], "namespaces": "hr"}):
        page = submit(client, "/admin/access/roles/new", {**data, "groups": [str(staff)]})
        assert "only give permissions you hold" in page.get_data(as_text=True), data
    page = submit(client, f"/admin/access/roles/{audit_id}", {
        "name": "auditor", "permissions": ["access:manage"], "groups": [str(staff)]})
    assert "grants more than you hold" in page.get_data(as_text=True)
    ok = submit(client, "/admin/access/roles/new", {
        "name": "emea", "permissions": ["invitations:manage"], "namespaces": "sales.emea",
        "groups": [str(staff)]})
    assert "Role “emea” saved" in ok.get_data(as_text=True)
    with app.app_context():
        assert sorted(db.session.scalars(select(Role.name))) == [
            "auditor", "emea", "keeper-access", "keeper-role"]
        assert db.session.get(Role, audit_id).permissions == ["audit:view"]
        assert db.session.get(Role, audit_id).groups == []


def test_only_a_superuser_makes_or_changes_superuser_groups(app, client, auth, admin):
    make_member(app, "keeper", permissions=["access:manage"])
    make_member(app, "boss", superuser_group=True)  # a superuser by group membership only
    with app.app_context():
        admins = Group(name="admins", attributes={}, is_superuser=True)
        staff = Group(name="staff", attributes={})
        db.session.add_all([admins, staff])
        db.session.commit()
        ids = {"admins": admins.id, "staff": staff.id}
    auth.login("keeper")
    refused = "Only a superuser can make a superuser group"
    assert refused in submit(client, "/admin/access/groups/new",
                             {"name": "root", "is_superuser": "y"}).get_data(as_text=True)
    assert refused in submit(client, f"/admin/access/groups/{ids['staff']}",
                             {"name": "staff", "is_superuser": "y"}).get_data(as_text=True)
    assert "Only a superuser can change or delete the superuser group “admins”" in submit(
        client, f"/admin/access/groups/{ids['admins']}", {"name": "renamed"}).get_data(as_text=True)
    assert "Group “helpdesk” saved" in submit(client, "/admin/access/groups/new",
                                              {"name": "helpdesk"}).get_data(as_text=True)
    with app.app_context():
        groups = {g.name: g.is_superuser for g in db.session.scalars(select(Group))}
        assert groups["admins"] is True and groups["staff"] is False and "root" not in groups
    auth.logout()
    auth.login("boss")
    assert "Group “root” saved" in submit(client, "/admin/access/groups/new",
                                          {"name": "root", "is_superuser": "y"}).get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Group).filter_by(name="root")).is_superuser


def test_a_flow_requiring_a_superuser_refuses_other_signed_in_users(app, client, auth, admin):
    from portal.models import FlowAuthentication

    from ..flowkit import make_flow

    url = make_flow(app, "admins-only", [
        {"type": "consent", "name": "admin-terms", "options": {"consent_text": "Root rules apply."}}],
        authentication=FlowAuthentication.REQUIRE_SUPERUSER)
    make_member(app, "plain")
    make_member(app, "boss", superuser_group=True)
    assert client.get(url, follow_redirects=True).status_code == 403  # signed out
    auth.login("plain")
    page = client.get(url, follow_redirects=True)
    assert page.status_code == 403 and "Root rules apply." not in page.get_data(as_text=True)
    auth.logout()
    auth.login("boss")  # a superuser by group membership
    page = client.get(url, follow_redirects=True)
    assert page.status_code == 200 and "Root rules apply." in page.get_data(as_text=True)


def _blueprint(*entries: str) -> str:
    return "version: 1\nentries:\n" + "".join(entries)


ADMINS_GROUP = """  - model: authentik_core.group
    id: admins
    identifiers: {name: admins}
"""


def _flow_manager(app) -> dict[str, int]:
    """A "flows: manage" admin, and groups: admins (superuser), staff, auditors (audit:view)."""
    make_member(app, "flowed", permissions=["flows:manage"])
    with app.app_context():
        groups = [Group(name="admins", attributes={}, is_superuser=True),
                  Group(name="staff", attributes={}),
                  Group(name="auditors", attributes={},
                        roles=[Role(name="auditor", permissions=["audit:view"])])]
        db.session.add_all(groups)
        db.session.commit()
        return {g.name: g.id for g in groups}


def _text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def _groups(app) -> dict[str, bool]:
    with app.app_context():
        return {g.name: g.is_superuser for g in db.session.scalars(select(Group))}


def test_a_blueprint_cannot_make_or_touch_superuser_groups_for_a_non_superuser(
        app, client, auth, admin):
    from ..helpers import IMPORT, upload_blueprint

    _flow_manager(app)
    before = _groups(app)
    auth.login("flowed")
    attempts = {
        "only a superuser can make a superuser group.": [
            _blueprint("""  - model: authentik_core.group
    identifiers: {name: staff}
    attrs: {is_superuser: true}
"""),
            _blueprint("""  - model: authentik_core.group
    identifiers: {name: root}
    attrs: {is_superuser: true}
""")],
        "only a superuser can change or delete the superuser group “admins”": [
            _blueprint(ADMINS_GROUP, "    state: absent\n"),
            _blueprint(ADMINS_GROUP, "    attrs: {is_superuser: false}\n")],
    }
    for message, texts in attempts.items():
        for text in texts:
            preview = upload_blueprint(client, text=text)
            assert preview.status_code == 422 and message in _text(preview), text
            # The apply step checks again: a forged hidden field is refused just the same.
            forged = submit(client, f"{IMPORT}/apply", {"blueprint": text}, page_url=IMPORT)
            assert forged.status_code == 422 and message in _text(forged), text
            assert _groups(app) == before
    # What they may do, they can: a plain group, or an unchanged mention of the superuser group.
    ok = upload_blueprint(client, text=_blueprint(ADMINS_GROUP, "    attrs: {is_superuser: true}\n", """\
  - model: authentik_core.group
    identifiers: {name: helpers}
    attrs: {is_superuser: false}
"""))
    assert ok.status_code == 200 and "Apply" in ok.get_data(as_text=True)


def test_new_users_go_only_to_groups_the_flow_admin_may_give(app, client, auth, admin):
    from ..helpers import upload_blueprint

    ids = _flow_manager(app)
    auth.login("flowed")
    for group in ("admins", "auditors"):
        preview = upload_blueprint(client, text=_blueprint(
            f"""  - model: authentik_stages_user_write.userwritestage
    identifiers: {{name: sneaky-write}}
    attrs: {{create_users_group: !Find [authentik_core.group, [name, {group}]]}}
"""))
        assert preview.status_code == 422, group
        assert (f"The stage “sneaky-write” can put people in the group “{group}”, which grants "
                "more than you may give") in _text(preview)
    form = client.get("/admin/stages/new/user_write").get_data(as_text=True)
    assert ">staff<" in form and ">admins<" not in form and ">auditors<" not in form
    forged = submit(client, "/admin/stages/new/user_write", {
        "name": "sneaky-write", "user_type": "internal", "create_users_group": str(ids["admins"])})
    assert "Not a valid choice" in forged.get_data(as_text=True)
    allowed = submit(client, "/admin/stages/new/user_write", {
        "name": "staff-write", "user_type": "internal", "create_users_group": str(ids["staff"])})
    assert "Stage “staff-write” created" in allowed.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Stage).filter_by(name="sneaky-write")) is None
        staff_write = db.session.scalar(select(Stage).filter_by(name="staff-write"))
        assert staff_write.options["create_users_group"] == ids["staff"]
    auth.logout()
    auth.login()  # the superuser may choose any group
    form = client.get("/admin/stages/new/user_write").get_data(as_text=True)
    assert ">admins<" in form and ">auditors<" in form
