"""portal.admin.users, tenant members: a superadmin adds an existing account to the tenant from
its users page (by username or email, with groups and direct roles, each with its namespaces)
and removes a member; a tenant admin may neither (they must not learn of other accounts)."""

from __future__ import annotations

import html
import re

from sqlalchemy import select

from portal import tenants
from portal.auth import service as accounts
from portal.extensions import db
from portal.models import Group, MemberRole, Role, Tenant, User

from ..conftest import TEST_PASSWORD, csrf_from, sign_in
from ..helpers import limited_lead

ADD = "/t/beta/admin/users/add-member"


def _beta(app) -> dict[str, int]:
    limited_lead(app)
    with app.app_context():
        tenants.use_tenant(db.session.scalar(select(Tenant).filter_by(slug="beta")))
        db.session.add(Group(name="crew", attributes={}))
        db.session.commit()
        tenants.use_tenant(None)
        accounts.create_user(username="sam", email="sam@example.com", password=TEST_PASSWORD)
        db.session.commit()
        ids = {r.name: r.id for r in db.session.scalars(select(Role))}
        ids["crew"] = db.session.scalar(select(Group.id).filter_by(name="crew"))
        ids["sam"] = db.session.scalar(select(User.id).filter_by(username="sam"))
        return ids


def _text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def _sam_in_beta(app) -> tuple:
    with app.app_context():
        sam = db.session.scalar(select(User).filter_by(username="sam"))
        beta = db.session.scalar(select(Tenant).filter_by(slug="beta"))
        return (sorted(t.slug for t in sam.tenants), sorted(g.name for g in sam.groups),
                sorted((d.role.name, d.namespaces) for d in db.session.scalars(
                    select(MemberRole).filter_by(user_id=sam.id, tenant_id=beta.id))))


def test_a_superadmin_adds_an_existing_account_and_removes_it(app, admin):
    ids = _beta(app)
    client = app.test_client()
    sign_in(client)
    assert "Add an existing account" in _text(client.get("/t/beta/admin/users/"))
    page = _text(client.get(ADD))
    data = {"csrf_token": csrf_from(page), "account": "nobody@example.com", "groups": [ids["crew"]],
            "roles": [ids["auditor"]], f"role_namespaces-{ids['auditor']}": "Sales!"}
    bad = _text(client.post(ADD, data=data))
    assert "“Sales!” is not a namespace" in bad and 'value="nobody@example.com"' in bad
    assert re.search(rf'name="role_namespaces-{ids["auditor"]}"[^>]*value="Sales!"', bad)
    data[f"role_namespaces-{ids['auditor']}"] = "sales"
    unknown = _text(client.post(ADD, data=data))
    assert "No account has this username or email." in unknown
    assert _sam_in_beta(app) == (["default"], [], [])
    added = _text(client.post(ADD, data={**data, "account": "SAM@example.com"}, follow_redirects=True))
    assert "sam is now a member of Beta." in added
    assert re.search(r'class="direct-roles">(.*?)</dd>', added).group(1) == "auditor (namespaces: sales)"
    assert _sam_in_beta(app) == (["beta", "default"], ["crew"], [("auditor", ["sales"])])
    again = _text(client.post(ADD, data={**data, "account": "sam"}))
    assert "sam is already a member of Beta." in again
    removed = client.post(f"/t/beta/admin/users/{ids['sam']}/remove-member",
                          data={"csrf_token": csrf_from(added)}, follow_redirects=True)
    assert "sam is no longer a member of Beta." in _text(removed)
    assert _sam_in_beta(app) == (["default"], [], [])
    # Now not of beta: its page is not found there.
    assert client.get(f"/t/beta/admin/users/{ids['sam']}").status_code == 404


def test_removing_yourself_out_of_admin_is_refused_on_the_page(app, admin):
    _beta(app)
    with app.app_context():
        tenants.use_tenant(db.session.scalar(select(Tenant).filter_by(slug="beta")))
        root = accounts.create_user(username="root", email="root@example.com", password=TEST_PASSWORD)
        root.groups.append(Group(name="beta-root", attributes={}, is_superuser=True))
        db.session.commit()
        root_id = root.id
    client = app.test_client()
    sign_in(client, "root")
    page = _text(client.get(f"/t/beta/admin/users/{root_id}"))
    refused = client.post(f"/t/beta/admin/users/{root_id}/remove-member",
                          data={"csrf_token": csrf_from(page)}, follow_redirects=True)
    assert "You cannot remove yourself from this tenant" in _text(refused)
    with app.app_context():
        assert [g.name for g in db.session.get(User, root_id).groups] == ["beta-root"]


def test_a_tenant_admin_may_not_add_or_remove_members(app, admin):
    ids = _beta(app)
    with app.app_context():
        tenants.use_tenant(db.session.scalar(select(Tenant).filter_by(slug="beta")))
        lead = db.session.scalar(select(User).filter_by(username="lead"))
        lead.groups[0].roles.append(Role(name="people", permissions=["users:manage"]))
        db.session.commit()
        lead_id = lead.id
    client = app.test_client()
    sign_in(client, "lead")
    listing = _text(client.get("/t/beta/admin/users/"))
    assert "Create user directly" in listing and "Add an existing account" not in listing
    assert client.get(ADD).status_code == 403
    token = csrf_from(listing)
    assert client.post(ADD, data={"csrf_token": token, "account": "sam"}).status_code == 403
    assert client.post(f"/t/beta/admin/users/{lead_id}/remove-member",
                       data={"csrf_token": token}).status_code == 403
    assert _sam_in_beta(app) == (["default"], [], [])
    assert ids["sam"] not in [int(i) for i in re.findall(r"/users/(\d+)", listing)]
