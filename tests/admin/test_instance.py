"""portal.admin.instance, the instance's invitations and audit log (/instance/invitations/,
/instance/audit/): the tenant pages' views acting on no tenant, for superadmins only."""

from __future__ import annotations

import html
import re

from sqlalchemy import func, select

from portal.audit import Action
from portal.extensions import db
from portal.invitations import service
from portal.models import AuditEvent, Invitation, InvitationUse, User

from ..conftest import csrf_from, numbers_in, path_of, sign_in, submit
from ..helpers import api_token, bearer, complete_wizard, existing_user, future_input, make_member

NEW = "/instance/invitations/new"
FLOW = "/if/flow/default-enrollment-flow/"


def _text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def _flow_id(client, url: str = NEW) -> str:
    page = client.get(url).get_data(as_text=True)
    return re.search(r'<select[^>]*name="flow".*?<option [^>]*value="(\d+)"', page, re.S).group(1)


def _make_link(client, name: str = "everyone", **extra):
    return submit(client, NEW + "?mode=link", {
        "kind": "link", "name": name, "flow": _flow_id(client, NEW + "?mode=link"),
        "expires": future_input(7), **extra})


def _invitations(app) -> list[tuple[str, int | None, bool]]:
    with app.app_context():
        return [(i.name, i.tenant_id, i.grants_superuser)
                for i in db.session.scalars(select(Invitation).order_by(Invitation.id))]


def _listed(client, url: str) -> set[int]:
    page = client.get(url).get_data(as_text=True)
    return {int(i) for i in re.findall(r'href="/(?:instance|t/[a-z-]+/admin)/invitations/(\d+)"', page)}


def test_a_superadmin_invites_to_the_instance_and_manages_it_there(app, client, admin):
    sign_in(client)
    form = _text(client.get(NEW + "?mode=link"))
    assert "an account on this instance" in form and "Make them instance superadmins" in form
    assert 'name="groups"' not in form  # a tenant's groups are not the instance's to give
    made = _make_link(client, grants_superuser="y")
    detail = _text(made)
    assert made.request.path.startswith("/instance/invitations/")
    assert "an account on this instance, as instance superadmin" in detail and "Ada Admin" in detail
    assert _invitations(app) == [("everyone", None, True)]
    tenant_made = submit(client, "/admin/invitations/new?mode=link", {
        "kind": "link", "name": "default team", "flow": _flow_id(client, "/admin/invitations/new"),
        "expires": future_input(7)})
    assert tenant_made.status_code == 200
    with app.app_context():
        instance_id, tenant_id = db.session.scalars(select(Invitation.id).order_by(Invitation.id))
    assert _listed(client, "/instance/invitations/") == {instance_id}
    assert _listed(client, "/admin/invitations/") == {tenant_id}
    assert client.get(f"/admin/invitations/{instance_id}").status_code == 404
    assert client.get(f"/instance/invitations/{tenant_id}").status_code == 404
    # The lifecycle, through the instance's own addresses.
    base = f"/instance/invitations/{instance_id}"
    extended = submit(client, base + "/extend", {"expires": future_input(20)})
    assert extended.request.path == base and "expiry was extended" in _text(extended)
    with app.app_context():
        old_digest = db.session.get(Invitation, instance_id).token_digest
    resent = submit(client, base + "/resend", {"expires": future_input(9)})
    assert resent.request.path == base and "A new link was made" in _text(resent)
    with app.app_context():
        assert db.session.get(Invitation, instance_id).token_digest != old_digest
    revoked = submit(client, base + "/revoke", {}, page_url=base)
    assert "Invitation revoked" in _text(revoked)
    deleted = submit(client, base + "/delete", {})
    assert deleted.request.path == "/instance/invitations/" and "deleted" in _text(deleted)
    assert _invitations(app) == [("default team", 1, False)]
    with app.app_context():
        events = db.session.execute(select(AuditEvent.action, AuditEvent.tenant_id).where(
            AuditEvent.action.like("invitation.%")).order_by(AuditEvent.id)).all()
    assert [tuple(e) for e in events] == [
        (Action.INVITATION_CREATED, None), (Action.INVITATION_CREATED, 1),
        (Action.INVITATION_EXTENDED, None), (Action.INVITATION_RESENT, None),
        (Action.INVITATION_REVOKED, None), (Action.INVITATION_DELETED, None)]


def test_bulk_invite_and_bulk_actions_on_the_instance(app, client, admin):
    sign_in(client)
    url = "/instance/invitations/bulk"
    made = submit(client, url, {"text": "ann@example.com\nbo@example.com", "flow": _flow_id(client, url),
                                "expires": future_input(7), "confirm": "Create invitations"})
    assert numbers_in(_text(made), "{} invitations created") == 2
    assert made.request.path == "/instance/invitations/"
    assert _invitations(app) == [("ann@example.com", None, False), ("bo@example.com", None, False)]
    with app.app_context():
        ids = list(db.session.scalars(select(Invitation.id)))
    done = submit(client, "/instance/invitations/bulk-action", {"action": "revoke", "ids": ids},
                  page_url="/instance/invitations/")
    assert numbers_in(_text(done), "{} invitation(s) revoked") == 2


def test_a_tenant_admin_is_refused_on_every_instance_page(app, admin):
    make_member(app, "lead", permissions=["invitations:manage", "users:manage", "access:manage",
                                          "audit:view", "flows:manage"])
    root = app.test_client()
    sign_in(root)
    _make_link(root)
    with app.app_context():
        invitation_id = db.session.scalar(select(Invitation.id))
    client = app.test_client()
    sign_in(client, "lead")
    token = csrf_from(client.get("/account/").get_data(as_text=True))
    base = f"/instance/invitations/{invitation_id}"
    gets = ["/instance/invitations/", "/instance/invitations/links.csv", NEW, base, base + "/edit",
            base + "/delete", base + "/resend", base + "/extend", "/instance/invitations/bulk",
            "/instance/audit/", "/instance/audit/export.csv"]
    posts = [NEW, base + "/edit", base + "/delete", base + "/revoke", base + "/resend",
             base + "/extend", base + "/emails/1/retry", "/instance/invitations/bulk-action",
             "/instance/invitations/bulk"]
    for url in gets:
        assert client.get(url).status_code == 403, url
    for url in posts:
        data = {"csrf_token": token, "kind": "link", "name": "mine", "expires": future_input(7),
                "ids": [invitation_id], "action": "delete", "text": "x@example.com",
                "confirm": "y"}
        assert client.post(url, data=data).status_code == 403, url
    assert _invitations(app) == [("everyone", None, False)]
    with app.app_context():
        invitation = db.session.get(Invitation, invitation_id)
        assert invitation.revoked_at is None


def test_the_tenant_form_and_bulk_never_make_an_instance_invitation(app, admin):
    """A forged "superadmin" box on a tenant's form is no field there: ignored; the invitation is
    the tenant's, as every tenant admin's (and a superadmin's, on a tenant page) is."""
    make_member(app, "lead", permissions=["invitations:manage"])
    for login in ("lead", "admin"):
        client = app.test_client()
        sign_in(client, login)
        flow = _flow_id(client, "/admin/invitations/new")
        submit(client, "/admin/invitations/new?mode=link", {
            "kind": "link", "name": f"{login} link", "flow": flow, "expires": future_input(7),
            "grants_superuser": "y", "instance": "y"})
        made = submit(client, "/admin/invitations/bulk", {
            "text": f"{login}-x@example.com", "flow": flow, "expires": future_input(7),
            "grants_superuser": "y", "confirm": "Create invitations"})
        assert numbers_in(_text(made), "{} invitation created") == 1
    assert _invitations(app) == [("lead link", 1, False), ("lead-x@example.com", 1, False),
                                 ("admin link", 1, False), ("admin-x@example.com", 1, False)]


def test_the_api_refuses_instance_invitations_for_every_token(app, admin):
    make_member(app, "lead", permissions=["invitations:manage"])
    for username, scopes in (("lead", ("invitations:manage",)), ("admin", ("superuser",))):
        secret = api_token(app, username, scopes=scopes)
        client = app.test_client()
        for extra in ({"instance": True}, {"grants_superuser": True}):
            answer = client.post("/api/v1/invitations/", headers=bearer(secret), json={
                "name": "by api", "flow": "default-enrollment-flow", **extra})
            assert answer.status_code == 422, answer.get_json()
        plain = client.post("/api/v1/invitations/", headers=bearer(secret), json={
            "name": f"{username} api", "flow": "default-enrollment-flow"})
        assert plain.status_code == 201
    assert _invitations(app) == [("lead api", 1, False), ("admin api", 1, False)]


def _instance_link(app, admin, **options) -> tuple[int, str]:
    with app.app_context():
        flow = db.session.scalar(select(service.Flow).filter_by(slug="default-enrollment-flow"))
        invitation = service.create_invitation(
            name=options.pop("name", "Join the instance"), flow=flow, expires_at=None,
            created_by=db.session.get(User, admin), instance=True, **options)
        return invitation.id, path_of(service.invitation_link(invitation, "http://portal.test"))


def test_a_new_person_enrolls_into_an_account_of_no_tenant_as_superadmin(app, admin):
    invitation_id, link = _instance_link(app, admin, grants_superuser=True, single_use=True)
    newcomer = app.test_client()
    first = _text(newcomer.get(link, follow_redirects=True))
    assert "You are invited" in first and "an account on this instance, as instance superadmin" in first
    assert "Ada Admin" in first
    complete_wizard(newcomer, link, username="nia", email="nia@example.com")
    with app.app_context():
        nia = db.session.scalar(select(User).filter_by(username="nia"))
        assert (nia.is_superuser, [t.slug for t in nia.tenants]) == (True, [])
        assert db.session.get(Invitation, invitation_id).use_count == 1
        used = db.session.scalars(select(AuditEvent.tenant_id).filter_by(
            action=Action.INVITATION_USED)).all()
        assert used == [None]
    assert newcomer.get("/instance/invitations/").status_code == 200  # a superadmin now


def test_a_signed_in_account_joins_the_instance_once(app, admin):
    sam = existing_user(app, "sam")
    invitation_id, link = _instance_link(app, admin, max_uses=5)
    client = app.test_client()
    sign_in(client, "sam")
    client.get(link)
    page = _text(client.get(FLOW))
    assert "Join the instance as Sam?" in page and "an account on this instance" in page
    done = submit(client, FLOW, {"decision": "accept"})
    assert done.request.path == "/account/" and "You accepted the invitation" in _text(done)
    again = client.get(link, follow_redirects=True)  # taken already: no second Accept
    assert again.status_code in (403, 409) and 'value="accept"' not in _text(again)
    with app.app_context():
        assert db.session.get(Invitation, invitation_id).use_count == 1
        assert db.session.scalar(select(func.count(InvitationUse.id))) == 1
        assert [t.slug for t in db.session.get(User, sam).tenants] == ["default"]  # as before
        assert db.session.get(User, sam).is_superuser is False


def test_the_account_page_lists_and_accepts_a_pending_instance_invitation(app, admin):
    sam = existing_user(app, "sam")
    invitation_id, _link = _instance_link(app, admin, email="sam@example.com", grants_superuser=True)
    client = app.test_client()
    sign_in(client, "sam")
    page = _text(client.get("/account/"))
    assert "Join the instance: Join the instance" in page
    assert "an account on this instance, as instance superadmin" in page
    token = csrf_from(page)
    client.post(f"/account/invitations/{invitation_id}/accept", data={"csrf_token": token})
    with app.app_context():
        assert db.session.get(User, sam).is_superuser is True
        assert db.session.get(Invitation, invitation_id).use_count == 1


def test_the_cli_makes_only_tenant_invitations(app, admin, tmp_path):
    """`blueprints import` acts in the tenant of --tenant; it has no way to the instance (no
    --instance, and a blueprint's grants_superuser is an ignored attribute)."""
    blueprint = tmp_path / "invite.yaml"
    blueprint.write_text(
        "version: 1\nentries:\n  - model: authentik_stages_invitation.invitation\n"
        "    identifiers: {name: cli-invite}\n"
        "    attrs: {flow: !Find [authentik_flows.flow, [slug, default-enrollment-flow]],"
        " grants_superuser: true, tenant: null}\n")
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["blueprints", "import", str(blueprint), "--instance"])
    assert refused.exit_code != 0 and "No such option" in refused.output
    done = runner.invoke(args=["blueprints", "import", str(blueprint), "--tenant", "default"])
    assert done.exit_code == 0, done.output
    assert _invitations(app) == [("cli-invite", 1, False)]
