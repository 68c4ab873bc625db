"""portal.admin.invitations: the admin who creates an invitation for an address that has an
account is told (only an admin who may see accounts); roles given directly, each with its own
namespaces, on the create, bulk and edit forms."""

from __future__ import annotations

import html as _html
import re
from datetime import UTC, datetime

from sqlalchemy import select

from portal import tenants
from portal.access import INVITATIONS_MANAGE, USERS_MANAGE
from portal.extensions import db
from portal.models import AuditEvent, Invitation, Role, Tenant, User

from ..conftest import csrf_from, numbers_in, sign_in, submit
from ..helpers import existing_user, future_input, invitation_flow_id, limited_lead, make_member

NOTE = "sam@example.com is already a member of this tenant; they will be asked to join."


def _invite(client, to: str):
    return submit(client, "/admin/invitations/new", {
        "kind": "recipients", "flow": invitation_flow_id(client), "expires": future_input(7),
        "to": to,
    }).get_data(as_text=True)


def test_the_admin_is_told_the_address_has_an_account(app, client, admin):
    existing_user(app, "sam")
    sign_in(client, "admin")
    assert NOTE in _invite(client, "sam@example.com")


def test_a_new_address_gets_no_note(app, client, admin):
    existing_user(app, "sam")
    sign_in(client, "admin")
    page = _invite(client, "nia@example.com")
    assert "already has an account" not in page
    assert numbers_in(page, "{} invitation created") == 1


def test_an_admin_who_may_not_see_accounts_learns_nothing(app, client, admin):
    """Same answer for an address with an account and one without: no enumeration."""
    existing_user(app, "sam")
    make_member(app, "inviter", permissions=[INVITATIONS_MANAGE])
    sign_in(client, "inviter")
    with_account = _invite(client, "sam@example.com")
    without = _invite(client, "nobody@example.com")
    assert "already has an account" not in with_account
    assert "already has an account" not in without
    assert numbers_in(with_account, "{} invitation created") == 1
    assert numbers_in(without, "{} invitation created") == 1


def test_an_admin_who_may_see_accounts_is_told(app, client, admin):
    existing_user(app, "sam")
    make_member(app, "people", permissions=[INVITATIONS_MANAGE, USERS_MANAGE])
    sign_in(client, "people")
    assert NOTE in _invite(client, "sam@example.com")


def test_bulk_preview_marks_an_address_with_an_account_only_for_who_may_see_accounts(app, admin):
    existing_user(app, "sam")
    make_member(app, "inviter", permissions=[INVITATIONS_MANAGE])
    for login, told in (("admin", True), ("inviter", False)):
        client = app.test_client()
        sign_in(client, login)
        page = submit(client, "/admin/invitations/bulk", {
            "text": "sam@example.com\nnia@example.com", "flow": invitation_flow_id(client),
            "expires": future_input(), "preview": "Preview"}).get_data(as_text=True)
        assert ("Already a member of this tenant: will be asked to join" in page) is told, login
        assert "Already a user" not in page
        assert numbers_in(page, "Preview: {} of {} rows will be invited") == (2, 2)


def _two_tenants_with_sam_in_beta(app) -> None:
    """Tenants alpha and beta; sam is a member of beta only; alpha's "people" admin may manage
    its users and invitations (everything in alpha, nothing beyond it)."""
    from portal import tenants
    from portal.auth.service import create_user
    from portal.extensions import db
    from portal.models import Group, Role

    from ..conftest import TEST_PASSWORD

    with app.app_context():
        alpha = tenants.create_tenant(name="Alpha", slug="alpha")
        beta = tenants.create_tenant(name="Beta", slug="beta")
        tenants.use_tenant(beta)
        create_user(username="sam", email="sam@example.com", password=TEST_PASSWORD)
        tenants.use_tenant(alpha)
        people = create_user(username="people", email="people@example.com", password=TEST_PASSWORD)
        people.groups.append(Group(name="people", attributes={}, roles=[
            Role(name="people", permissions=[INVITATIONS_MANAGE, USERS_MANAGE])]))
        db.session.commit()


def _invite_in(client, slug: str, to: str) -> str:
    import re

    url = f"/t/{slug}/admin/invitations/new"
    form = client.get(url).get_data(as_text=True)
    flow = re.search(r'<select[^>]*name="flow".*?<option [^>]*value="(\d+)"', form, re.S).group(1)
    return submit(client, url, {
        "kind": "recipients", "flow": flow, "expires": future_input(7),
        "to": to,
    }).get_data(as_text=True)


def test_a_tenant_admin_is_told_only_of_their_own_tenants_members(app, admin):
    """An account of another tenant is not a tenant admin's to learn about: the same page as for
    an address without an account. A member of their tenant is named as such."""
    _two_tenants_with_sam_in_beta(app)
    client = app.test_client()
    sign_in(client, "people")
    elsewhere = _invite_in(client, "alpha", "sam@example.com")
    nobody = _invite_in(client, "alpha", "nobody@example.com")
    for page in (elsewhere, nobody):
        assert "already" not in page
        assert numbers_in(page, "{} invitation created") == 1
    member = _invite_in(client, "alpha", "people@example.com")
    assert "people@example.com is already a member of this tenant; they will be asked to join." in member


def test_a_superadmin_is_told_of_members_and_of_accounts_elsewhere(app, admin):
    _two_tenants_with_sam_in_beta(app)
    client = app.test_client()
    sign_in(client, "admin")
    assert "sam@example.com already has an account; they will be asked to join." in _invite_in(
        client, "alpha", "sam@example.com")
    assert NOTE in _invite_in(client, "beta", "sam@example.com")


# -- roles given directly, each with its own namespaces (create, bulk, edit) --------------------

NEW = "/t/beta/admin/invitations/new?mode=link"


def _role_ids(app) -> dict[str, int]:
    with app.app_context():
        return {r.name: r.id for r in db.session.scalars(select(Role))}


def _direct(app) -> dict[str, list[tuple[str, list[str]]]]:
    with app.app_context():
        return {i.email or i.name: sorted((d.role.name, d.namespaces) for d in i.direct_roles)
                for i in db.session.scalars(select(Invitation).order_by(Invitation.id))}


def _page(client, url: str) -> str:
    return _html.unescape(client.get(url).get_data(as_text=True))


def _form(page: str, **data) -> dict:
    flow = re.search(r'name="flow"[^>]*>\s*<option[^>]*value="(\d+)"', page).group(1)
    return {"csrf_token": csrf_from(page), "kind": "link", "flow": flow,
            "expires": "2099-01-01T00:00", **data}


def _lead(app):
    limited_lead(app)
    client = app.test_client()
    sign_in(client, "lead")
    return client, _role_ids(app)


def _value(page: str, role_id: int) -> str | None:
    found = re.search(rf'name="role_namespaces-{role_id}"[^>]*value="([^"]*)"', page)
    return found.group(1) if found else None


def _ticked(page: str) -> list[int]:
    boxes = re.findall(r'<input[^>]*name="roles"[^>]*>', page)
    return [int(re.search(r'value="(\d+)"', b).group(1)) for b in boxes if "checked" in b]


def test_each_role_row_gives_its_own_namespaces(app, admin):
    client, ids = _lead(app)
    page = _page(client, NEW)
    assert "Namespaces for auditor" in page and "flows-boss" not in page
    made = client.post(NEW, data=_form(page, name="two roles", roles=[ids["auditor"], ids["sales-auditor"]],
                                       **{f"role_namespaces-{ids['auditor']}": "sales.emea, sales-eu",
                                          f"role_namespaces-{ids['sales-auditor']}": ""}),
                       follow_redirects=True)
    assert _direct(app) == {"two roles": [("auditor", ["sales.emea", "sales-eu"]),
                                          ("sales-auditor", [])]}
    detail = _html.unescape(made.get_data(as_text=True))
    roles = re.search(r'class="grants-roles">(.*?)</dd>', detail).group(1)
    assert roles == "auditor (namespaces: sales.emea, sales-eu); sales-auditor (namespaces: sales)"


def test_bad_namespaces_are_refused_in_their_rows_and_everything_typed_is_kept(app, admin):
    client, ids = _lead(app)
    page = _page(client, NEW)
    typed = {f"role_namespaces-{ids['auditor']}": "hr",
             f"role_namespaces-{ids['sales-auditor']}": "Sales!",
             f"role_namespaces-{ids['inviter']}": "untouched"}  # a row not ticked: kept, unused
    response = client.post(NEW, data=_form(page, name="kept name",
                                           roles=[ids["auditor"], ids["sales-auditor"]], **typed))
    assert response.status_code == 200
    again = _html.unescape(response.get_data(as_text=True))
    assert _direct(app) == {}
    assert _value(again, ids["auditor"]) == "hr" and _value(again, ids["sales-auditor"]) == "Sales!"
    assert _value(again, ids["inviter"]) == "untouched"
    assert sorted(_ticked(again)) == sorted([ids["auditor"], ids["sales-auditor"]])
    assert 'value="kept name"' in again
    auditor_error = re.search(rf'id="role_namespaces-{ids["auditor"]}-error">(.*?)</p>', again).group(1)
    assert auditor_error == ("The role “auditor” grants more than you hold there; you can only give "
                             "permissions you hold yourself, in your own namespaces (limit it to "
                             "yours: sales).")
    sales_error = re.search(rf'id="role_namespaces-{ids["sales-auditor"]}-error">(.*?)</p>',
                            again).group(1)
    assert sales_error.startswith("“Sales!” is not a namespace")
    assert f'id="role_namespaces-{ids["inviter"]}-error"' not in again
    assert '<a href="#role_namespaces">Namespaces of the roles:' in again  # the summary links it
    # A role not offered (beyond the lead), by a forged id: refused, nothing made.
    forged = client.post(NEW, data=_form(page, name="forged", roles=[ids["flows-boss"]]))
    assert forged.status_code in (200, 403) and _direct(app) == {}


def test_bulk_invite_gives_each_role_its_own_namespaces(app, admin):
    client, ids = _lead(app)
    url = "/t/beta/admin/invitations/bulk"
    page = _page(client, url)
    data = _form(page, text="ann@example.com\nbo@example.com", confirm="Create invitations",
                 roles=[ids["auditor"], ids["sales-auditor"]],
                 **{f"role_namespaces-{ids['auditor']}": "sales",
                    f"role_namespaces-{ids['sales-auditor']}": "sales.emea"})
    del data["kind"]
    made = client.post(url, data=data, follow_redirects=True)
    assert numbers_in(_html.unescape(made.get_data(as_text=True)), "{} invitations created") == 2
    expected = [("auditor", ["sales"]), ("sales-auditor", ["sales.emea"])]
    assert _direct(app) == {"ann@example.com": expected, "bo@example.com": expected}
    refused = client.post(url, data={**data, f"role_namespaces-{ids['auditor']}": "hr, sales"})
    text = _html.unescape(refused.get_data(as_text=True))
    assert refused.status_code == 200 and _value(text, ids["auditor"]) == "hr, sales"
    assert "(limit it to yours: sales)" in text and len(_direct(app)) == 2


def _invitation_by(app, username: str, roles: list[tuple[str, list[str]]], *, use_count: int = 0) -> int:
    from portal.invitations import service

    with app.app_context():
        tenants.use_tenant(db.session.scalar(select(Tenant).filter_by(slug="beta")))
        flow = db.session.scalar(select(tenants.Flow).filter_by(slug="default-enrollment-flow"))
        invitation = service.create_invitation(
            name=f"by {username}", flow=flow, expires_at=datetime(2099, 1, 1, tzinfo=UTC),
            created_by=db.session.scalar(select(User).filter_by(username=username)),
            roles=[(db.session.scalar(select(Role).filter_by(name=n)), ns) for n, ns in roles])
        invitation.use_count = use_count
        db.session.commit()
        return invitation.id


def test_the_edit_form_changes_the_direct_roles_for_future_uses_and_records_it(app, admin):
    client, ids = _lead(app)
    invitation_id = _invitation_by(app, "lead", [("auditor", ["sales"])], use_count=3)
    url = f"/t/beta/admin/invitations/{invitation_id}/edit"
    page = _page(client, url)
    assert _ticked(page) == [ids["auditor"]] and _value(page, ids["auditor"]) == "sales"
    assert numbers_in(page, "Used {} times so far: changes apply to future uses only") == 3
    data = _form(page, name="by lead", roles=[ids["sales-auditor"]],
                 **{f"role_namespaces-{ids['sales-auditor']}": "sales.emea"})
    del data["kind"]
    saved = client.post(url, data=data, follow_redirects=True)
    assert "Invitation saved." in saved.get_data(as_text=True)
    assert _direct(app) == {"by lead": [("sales-auditor", ["sales.emea"])]}
    with app.app_context():
        event = db.session.scalar(select(AuditEvent).filter_by(action="invitation.updated"))
        assert event.actor_name == "lead" and event.object_id == invitation_id
        assert event.detail == {
            "changed": ["roles"], "uses_so_far": 3,
            "roles": {"before": [["auditor", ["sales"]]], "after": [["sales-auditor", ["sales.emea"]]]}}
    # The new grants pass the ceiling too: auditor unlimited is beyond the lead; nothing changes.
    refused = client.post(url, data={**data, "roles": [ids["auditor"]],
                                     f"role_namespaces-{ids['auditor']}": ""})
    assert refused.status_code == 200
    assert "(limit it to yours: sales)" in _html.unescape(refused.get_data(as_text=True))
    assert _direct(app) == {"by lead": [("sales-auditor", ["sales.emea"])]}


def test_an_invitation_granting_more_than_the_admin_holds_cannot_be_edited(app, admin):
    client, ids = _lead(app)
    invitation_id = _invitation_by(app, "admin", [("auditor", [])])  # audit:view everywhere
    url = f"/t/beta/admin/invitations/{invitation_id}/edit"
    assert client.get(url).status_code == 403
    page_of_root = app.test_client()
    sign_in(page_of_root)
    page = _page(page_of_root, url)  # a superadmin may; the unused invitation's note is plain
    assert "Changes apply to the people who use the invitation from now on." in page
    assert client.post(url, data={"csrf_token": csrf_from(_page(client, NEW)), "name": "taken over",
                                  "roles": []}).status_code == 403
    assert _direct(app) == {"by admin": [("auditor", [])]}
