"""Audit events of no tenant (audit_events.tenant_id NULL): sign-ins, accounts' own changes and
instance invitations belong to the instance; superadmins read them on /instance/audit/, and a
tenant's audit page keeps showing only that tenant's."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select

from portal.audit import Action
from portal.extensions import db
from portal.models import AuditEvent

from ..conftest import TEST_PASSWORD, sign_in, submit
from ..helpers import future_input, invitation_flow_id, make_member


def _events(app) -> list[tuple[str, int | None]]:
    with app.app_context():
        return [tuple(r) for r in db.session.execute(
            select(AuditEvent.action, AuditEvent.tenant_id).order_by(AuditEvent.id))]


def _actions_on(page: str) -> list[str]:
    import re

    return re.findall(r"<td><code>([a-z_.]+)</code></td>", page)


def test_sign_ins_are_instance_events_and_tenant_events_stay_the_tenants(app, admin):
    make_member(app, "auditor", permissions=["audit:view"])
    root = app.test_client()
    sign_in(root)
    submit(root, "/admin/invitations/new?mode=link", {
        "kind": "link", "name": "team link", "flow": invitation_flow_id(root),
        "expires": future_input(7)})
    watcher = app.test_client()
    sign_in(watcher, "auditor", password="wrong-password")  # a failed sign-in: no tenant either
    sign_in(watcher, "auditor")
    assert _events(app) == [(Action.SIGN_IN_SUCCEEDED, None), (Action.INVITATION_CREATED, 1),
                            (Action.SIGN_IN_FAILED, None), (Action.SIGN_IN_SUCCEEDED, None)]
    tenant_page = watcher.get("/admin/audit/").get_data(as_text=True)
    assert _actions_on(tenant_page) == [Action.INVITATION_CREATED]
    tenant_csv = list(csv.DictReader(io.StringIO(
        watcher.get("/admin/audit/export.csv").get_data(as_text=True))))
    assert [r["action"] for r in tenant_csv] == [Action.INVITATION_CREATED]
    assert watcher.get("/instance/audit/").status_code == 403
    instance_page = root.get("/instance/audit/").get_data(as_text=True)
    assert "Instance audit log" in instance_page
    assert _actions_on(instance_page) == [Action.SIGN_IN_SUCCEEDED, Action.SIGN_IN_FAILED,
                                          Action.SIGN_IN_SUCCEEDED]
    filtered = root.get("/instance/audit/?action=sign_in.failed").get_data(as_text=True)
    assert _actions_on(filtered) == [Action.SIGN_IN_FAILED]
    exported = list(csv.DictReader(io.StringIO(
        root.get("/instance/audit/export.csv").get_data(as_text=True))))
    assert [(r["action"], r["actor"]) for r in exported] == [
        (Action.SIGN_IN_SUCCEEDED, "auditor"), (Action.SIGN_IN_FAILED, ""),
        (Action.SIGN_IN_SUCCEEDED, "admin")]


def test_an_accounts_own_changes_are_instance_events(app, admin):
    client = app.test_client()
    sign_in(client)
    new = "violet-kettle-harbour-42"
    submit(client, "/account/password", {"current_password": TEST_PASSWORD, "password": new,
                                         "password_repeat": new})
    sign_in(client, password=new)
    submit(client, "/account/sign-out-everywhere", {}, page_url="/account/")
    assert [e for e in _events(app) if e[0] != Action.SIGN_IN_SUCCEEDED] == [
        (Action.PASSWORD_CHANGED, None), (Action.SESSIONS_ENDED, None)]
    assert {tenant for _action, tenant in _events(app)} == {None}
