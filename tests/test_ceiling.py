"""The privilege ceiling: no path lets an admin put people in a group they may not give.

One world for every test: a superuser built the flow "sales-root", whose user-write stage puts
every new user in the superuser group "admins", behind an invitation stage; "sales-open" is an
empty flow; "sales-staff" gives the plain group "staff". Each path is tried by each role; a
refusal must say 403 (422 for a blueprint) with the group named, and leave the database exactly
as it was. The superuser succeeds.
"""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal import access
from portal.extensions import db
from portal.invitations import service
from portal.models import (
    Flow,
    FlowAuthentication,
    FlowStageBinding,
    Group,
    Invitation,
    OutboxMessage,
    Stage,
    User,
    utcnow,
)

from .conftest import csrf_from
from .flowkit import make_flow
from .helpers import future_input, make_member

IMPORT_APPLY = "/admin/flows/import/apply"
ROLES = {  # role -> (permissions, namespaces) of its one group's role
    "flows": (["flows:manage"], []),
    "invitations": (["invitations:manage"], ["sales"]),
    "access": (["access:manage"], []),
}
CEILING = "can put people in the group “admins”, which grants more than you may give"


@pytest.fixture
def world(app, admin) -> dict:
    with app.app_context():
        admins = Group(name="admins", attributes={}, is_superuser=True)
        staff = Group(name="staff", attributes={})
        db.session.add_all([admins, staff])
        db.session.commit()
        group_ids = {"admins": admins.id, "staff": staff.id}
    make_flow(app, "sales-root", [
        {"type": "invitation", "name": "root-invitation",
         "options": {"continue_flow_without_invitation": False}},
        {"type": "user_write", "name": "root-write",
         "options": {"create_users_group": group_ids["admins"]}},
    ], authentication=FlowAuthentication.REQUIRE_UNAUTHENTICATED)
    make_flow(app, "sales-open", [])
    make_flow(app, "sales-staff", [
        {"type": "invitation", "name": "staff-invitation"},
        {"type": "user_write", "name": "staff-write",
         "options": {"create_users_group": group_ids["staff"]}},
    ])
    with app.app_context():
        flows = {f.slug: f for f in db.session.scalars(select(Flow))}
        creator = db.session.get(User, admin)
        expires = utcnow() + timedelta(days=7)
        made = {
            # A superuser's invitation that carries the superuser group itself...
            "root-invite": service.create_invitation(
                name="root-invite", flow=flows["sales-staff"], expires_at=expires,
                groups=[db.session.get(Group, group_ids["admins"])], created_by=creator),
            # ...one that leads there through its flow...
            "flow-root-invite": service.create_invitation(
                name="flow-root-invite", flow=flows["sales-root"], expires_at=expires,
                created_by=creator),
            # ...and one any sales inviter may manage.
            "plain-invite": service.create_invitation(
                name="plain-invite", flow=flows["sales-staff"], expires_at=expires,
                created_by=creator),
        }
        stages = {s.name: s.id for s in db.session.scalars(select(Stage))}
        invitation_binding = db.session.scalar(
            select(FlowStageBinding.id).where(FlowStageBinding.flow_id == flows["sales-root"].id,
                                              FlowStageBinding.stage_id == stages["root-invitation"]))
        return {**{f"flow:{slug}": f.id for slug, f in flows.items()},
                **{f"stage:{name}": i for name, i in stages.items()},
                **{f"group:{name}": i for name, i in group_ids.items()},
                **{f"invitation:{name}": i.id for name, i in made.items()},
                "binding:root-invitation": invitation_binding}


def snapshot(app) -> dict:
    """Everything a path could change, without ids that a rollback would not restore."""
    def dumped(value):
        return json.dumps(value, sort_keys=True, default=str)

    with app.app_context():
        return {
            "flows": sorted((f.slug, f.name, f.title, f.designation, f.authentication)
                            for f in db.session.scalars(select(Flow))),
            "bindings": sorted((b.flow.slug, b.stage.name, b.order, dumped(b.condition),
                                b.evaluate_on_plan, b.re_evaluate_policies)
                               for b in db.session.scalars(select(FlowStageBinding))),
            "stages": sorted((s.name, s.type, dumped(s.options))
                             for s in db.session.scalars(select(Stage))),
            "invitations": sorted((i.name, i.flow.slug, i.token_digest, str(i.expires_at),
                                   str(i.revoked_at), dumped(i.attributes),
                                   tuple(sorted(g.name for g in i.groups)))
                                  for i in db.session.scalars(select(Invitation))),
            "groups": sorted((g.name, g.is_superuser, dumped(g.attributes))
                             for g in db.session.scalars(select(Group))),
            "outbox": db.session.scalar(select(func.count(OutboxMessage.id))),
        }


def sign_in(app, auth, role: str) -> None:
    if role == "superuser":
        auth.login()
        return
    permissions, namespaces = ROLES[role]
    make_member(app, role, permissions=permissions, namespaces=namespaces)
    auth.login(role)


def post(client, url: str, data: dict | None = None, **kwargs):
    """A POST with the session's CSRF token, as a hand-made request would send it."""
    token = csrf_from(client.get("/account/").get_data(as_text=True))
    return client.post(url, data={"csrf_token": token, **(data or {})}, **kwargs)


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def _blueprint(*entries: str) -> str:
    return "version: 1\nentries:\n" + "".join(entries)


FIND_ROOT_FLOW = "!Find [authentik_flows.flow, [slug, sales-root]]"
FIND_ROOT_INVITATION_STAGE = "!Find [authentik_stages_invitation.invitationstage, [name, root-invitation]]"


# -- the paths: (name, permission the page needs, refusal status, what the refusal says, action) --

def _bind_root_write(client, ids):
    return post(client, f"/admin/flows/{ids['flow:sales-open']}/bindings/new",
                {"stage": ids["stage:root-write"], "order": "10", "condition_type": "",
                 "evaluate_on_plan": "y"})


def _unbind_invitation_stage(client, ids):
    return post(client, f"/admin/flows/{ids['flow:sales-root']}/bindings/"
                        f"{ids['binding:root-invitation']}/delete")


def _move_invitation_stage(client, ids):
    return post(client, f"/admin/flows/{ids['flow:sales-root']}/bindings/"
                        f"{ids['binding:root-invitation']}/move/down")


def _condition_away_invitation_stage(client, ids):
    return post(client, f"/admin/flows/{ids['flow:sales-root']}/bindings/"
                        f"{ids['binding:root-invitation']}/edit",
                {"stage": ids["stage:root-invitation"], "order": "10",
                 "condition_type": "invitation_in_effect", "evaluate_on_plan": "y"})


def _continue_without_invitation(client, ids):
    return post(client, f"/admin/stages/{ids['stage:root-invitation']}/edit",
                {"name": "root-invitation", "continue_flow_without_invitation": "y"})


def _retarget_root_write(client, ids):
    return post(client, f"/admin/stages/{ids['stage:root-write']}/edit",
                {"name": "root-write", "user_type": "internal",
                 "create_users_group": ids["group:staff"]})


def _open_root_flow_to_anyone(client, ids):
    return post(client, f"/admin/flows/{ids['flow:sales-root']}/edit",
                {"name": "sales-root", "slug": "sales-root", "title": "", "designation": "enrollment",
                 "authentication": FlowAuthentication.NONE})


def _delete_root_flow(client, ids):
    return post(client, f"/admin/flows/{ids['flow:sales-root']}/delete")


def _import(text: str):
    return lambda client, ids: post(client, IMPORT_APPLY, {"blueprint": text})


_bp_bind_found_stage = _import(_blueprint("""\
  - model: authentik_flows.flow
    id: flow
    identifiers: {slug: sales-new}
    attrs: {name: Sales new, designation: enrollment, authentication: none}
  - model: authentik_flows.flowstagebinding
    identifiers:
      target: !KeyOf flow
      stage: !Find [authentik_stages_user_write.userwritestage, [name, root-write]]
      order: 10
"""))
_bp_unbind_invitation_stage = _import(_blueprint(f"""\
  - model: authentik_flows.flowstagebinding
    state: absent
    identifiers:
      target: {FIND_ROOT_FLOW}
      stage: {FIND_ROOT_INVITATION_STAGE}
      order: 10
"""))
_bp_continue_without_invitation = _import(_blueprint("""\
  - model: authentik_stages_invitation.invitationstage
    identifiers: {name: root-invitation}
    attrs: {continue_flow_without_invitation: true}
"""))
_bp_open_root_flow = _import(_blueprint("""\
  - model: authentik_flows.flow
    identifiers: {slug: sales-root}
    attrs: {name: sales-root, authentication: none}
"""))
_bp_invite_to_root_flow = _import(_blueprint(f"""\
  - model: authentik_stages_invitation.invitation
    identifiers: {{name: smuggled}}
    attrs: {{flow: {FIND_ROOT_FLOW}, single_use: false}}
"""))
_bp_delete_root_invite = _import(_blueprint("""\
  - model: authentik_stages_invitation.invitation
    state: absent
    identifiers: {name: root-invite}
"""))
_bp_rename_group = _import(_blueprint("""\
  - model: authentik_core.group
    identifiers: {name: staff}
    attrs: {name: staff-renamed}
"""))
_bp_delete_group = _import(_blueprint("""\
  - model: authentik_core.group
    state: absent
    identifiers: {name: staff}
"""))


def _invite_to_root_flow(client, ids):
    return post(client, "/admin/invitations/new", {
        "kind": "link", "name": "smuggled", "flow": ids["flow:sales-root"], "expires": future_input()})


def _bulk_invite_to_root_flow(client, ids):
    return post(client, "/admin/invitations/bulk", {
        "text": "someone@example.com", "flow": ids["flow:sales-root"], "expires": future_input(),
        "confirm": "Create invitations"})


def _invitation_action(action: str, name: str = "root-invite", **data):
    def run(client, ids):
        return post(client, f"/admin/invitations/{ids[f'invitation:{name}']}/{action}", data)
    return run


def _edit_root_invite(client, ids):
    return post(client, f"/admin/invitations/{ids['invitation:root-invite']}/edit", {
        "name": "root-invite, edited", "flow": ids["flow:sales-staff"], "expires": future_input()})


def _duplicate_root_invite(client, ids):
    return client.get(f"/admin/invitations/new?from={ids['invitation:root-invite']}")


FLOWS, INVITATIONS = access.FLOWS_MANAGE, access.INVITATIONS_MANAGE
PATHS = {
    # The flow editor and the stage editor.
    "bind a superuser's user-write stage into an open flow": (FLOWS, 403, CEILING, _bind_root_write),
    "unbind the invitation stage": (FLOWS, 403, CEILING, _unbind_invitation_stage),
    "re-order the invitation stage": (FLOWS, 403, CEILING, _move_invitation_stage),
    "condition away the invitation stage": (FLOWS, 403, CEILING, _condition_away_invitation_stage),
    "tick continue without invitation": (FLOWS, 403, CEILING, _continue_without_invitation),
    "change the user-write stage's group": (FLOWS, 403, CEILING, _retarget_root_write),
    "change the flow's authentication": (FLOWS, 403, CEILING, _open_root_flow_to_anyone),
    "delete the flow": (FLOWS, 403, CEILING, _delete_root_flow),
    # The blueprint importer (the apply step; the preview runs the same import and rolls back).
    "blueprint binds the stage by !Find": (FLOWS, 422, CEILING, _bp_bind_found_stage),
    "blueprint unbinds the invitation stage": (FLOWS, 422, CEILING, _bp_unbind_invitation_stage),
    "blueprint ticks continue without invitation": (FLOWS, 422, CEILING,
                                                    _bp_continue_without_invitation),
    "blueprint changes the flow's authentication": (FLOWS, 422, CEILING, _bp_open_root_flow),
    "blueprint creates an invitation": (
        FLOWS, 422, "you may not manage invitations of the flow “sales-root”", _bp_invite_to_root_flow),
    "blueprint deletes an invitation": (
        FLOWS, 422, "you may not manage invitations of the flow “sales-staff”", _bp_delete_root_invite),
    "blueprint renames a group": (FLOWS, 422, "can change or delete the group “staff”",
                                  _bp_rename_group),
    "blueprint deletes a group": (FLOWS, 422, "can change or delete the group “staff”",
                                  _bp_delete_group),
    # Invitations.
    "invite to a flow that assigns a superuser group": (INVITATIONS, 403, CEILING,
                                                        _invite_to_root_flow),
    "bulk invite to that flow": (INVITATIONS, 403, CEILING, _bulk_invite_to_root_flow),
    "resend a superuser's invitation": (INVITATIONS, 403, CEILING,
                                        _invitation_action("resend", expires=future_input(10))),
    "resend an invitation whose flow assigns it": (
        INVITATIONS, 403, CEILING, _invitation_action("resend", "flow-root-invite",
                                                      expires=future_input(10))),
    "extend a superuser's invitation": (INVITATIONS, 403, CEILING,
                                        _invitation_action("extend", expires=future_input(10))),
    "edit a superuser's invitation": (INVITATIONS, 403, CEILING, _edit_root_invite),
    "duplicate a superuser's invitation": (INVITATIONS, 403, CEILING, _duplicate_root_invite),
    "revoke a superuser's invitation": (INVITATIONS, 403, CEILING, _invitation_action("revoke")),
    "delete a superuser's invitation": (INVITATIONS, 403, CEILING, _invitation_action("delete")),
}


def _holds(role: str, permission: str) -> bool:
    return permission in ROLES[role][0]


@pytest.mark.parametrize("role", ["superuser", *ROLES])
@pytest.mark.parametrize("path", list(PATHS))
def test_every_path_into_a_group_stays_under_the_ceiling(app, client, auth, world, role, path):
    permission, status, message, act = PATHS[path]
    sign_in(app, auth, role)
    before = snapshot(app)
    response = act(client, world)
    if role == "superuser":
        assert response.status_code in (200, 302), text_of(response)
        if path != "duplicate a superuser's invitation":  # a GET: the form, filled in
            assert snapshot(app) != before
        return
    if _holds(role, permission):
        assert response.status_code == status
        assert message in text_of(response)
    else:  # the page itself is not theirs
        assert response.status_code == 403
    assert snapshot(app) == before


# -- what limited admins see -------------------------------------------------------------------

LINK_RE = re.compile(r'id="invitation-link" type="text" readonly value="([^"]+)"')


@pytest.mark.parametrize("name", ["root-invite", "flow-root-invite"])
def test_an_invitation_beyond_the_ceiling_is_shown_read_only_without_its_link(
        app, client, auth, world, name):
    sign_in(app, auth, "invitations")
    page = client.get(f"/admin/invitations/{world[f'invitation:{name}']}")
    text = text_of(page)
    assert page.status_code == 200 and CEILING in text and "Read-only for you" in text
    assert LINK_RE.search(text) is None and "itoken=" not in text
    assert "Resend (new link)" not in text and "Duplicate" not in text
    listing = text_of(client.get("/admin/invitations/"))
    row = re.search(rf'<tr>(?:(?!</tr>).)*>{name}</a>(?:(?!</tr>).)*</tr>', listing, re.S).group(0)
    assert "read-only" in row and 'name="ids"' not in row
    plain = text_of(client.get(f"/admin/invitations/{world['invitation:plain-invite']}"))
    assert LINK_RE.search(plain) and "Read-only" not in plain
    auth.logout()
    sign_in(app, auth, "superuser")
    assert LINK_RE.search(text_of(client.get(f"/admin/invitations/{world[f'invitation:{name}']}")))


def test_the_links_export_leaves_out_invitations_beyond_the_ceiling(app, client, auth, world):
    def exported() -> list[str]:
        response = client.get("/admin/invitations/links.csv")
        assert response.status_code == 200
        return sorted(line.split(",")[0] for line in response.get_data(as_text=True).splitlines()[1:])

    sign_in(app, auth, "invitations")
    assert exported() == ["plain-invite"]
    auth.logout()
    sign_in(app, auth, "superuser")
    assert exported() == ["flow-root-invite", "plain-invite", "root-invite"]


def test_the_flow_choices_offer_only_flows_within_the_ceiling(app, client, auth, world):
    sign_in(app, auth, "invitations")
    for url in ("/admin/invitations/new", "/admin/invitations/bulk"):
        options = re.findall(r'<option[^>]*value="(\d+)"', client.get(url).get_data(as_text=True))
        flows = {int(v) for v in options}
        assert world["flow:sales-staff"] in flows and world["flow:sales-open"] in flows, url
        assert world["flow:sales-root"] not in flows, url


def test_bulk_actions_leave_invitations_beyond_the_ceiling_alone(app, client, auth, world):
    sign_in(app, auth, "invitations")
    before = snapshot(app)
    page = post(client, "/admin/invitations/bulk-action", {
        "action": "revoke", "ids": [world["invitation:root-invite"]]}, follow_redirects=True)
    text = text_of(page)
    assert "1 invitation(s) left unchanged" in text and CEILING in text
    assert re.search(r"\b0 invitation\(s\) revoked\.", text)
    assert snapshot(app) == before
    post(client, "/admin/invitations/bulk-action", {
        "action": "revoke", "ids": [world["invitation:plain-invite"]]})
    with app.app_context():
        assert db.session.get(Invitation, world["invitation:plain-invite"]).revoked_at is not None


def test_a_flow_beyond_the_ceiling_is_shown_read_only(app, client, auth, world):
    sign_in(app, auth, "flows")
    page = client.get(f"/admin/flows/{world['flow:sales-root']}")
    text = text_of(page)
    assert page.status_code == 200 and "Read-only for you" in text and CEILING in text
    assert "Add a stage" not in text and "bindings/new" not in text
    for url in (f"/admin/flows/{world['flow:sales-root']}/edit",
                f"/admin/flows/{world['flow:sales-root']}/bindings/new",
                f"/admin/stages/{world['stage:root-write']}/edit",
                f"/admin/stages/{world['stage:root-invitation']}/edit"):
        refused = client.get(url)
        assert refused.status_code == 403 and CEILING in text_of(refused), url
    # Their own open flow stays theirs: a stage within their ceiling binds.
    added = post(client, f"/admin/flows/{world['flow:sales-open']}/bindings/new",
                 {"stage": world["stage:staff-write"], "order": "10", "condition_type": "",
                  "evaluate_on_plan": "y"})
    assert added.status_code == 302
    with app.app_context():
        flow = db.session.get(Flow, world["flow:sales-open"])
        assert [b.stage.name for b in flow.bindings] == ["staff-write"]


def test_a_blueprint_within_the_ceiling_still_imports_for_a_flow_admin(app, client, auth, world):
    sign_in(app, auth, "flows")
    response = post(client, IMPORT_APPLY, {"blueprint": _blueprint("""\
  - model: authentik_flows.flow
    id: flow
    identifiers: {slug: sales-new}
    attrs: {name: Sales new, designation: enrollment}
  - model: authentik_flows.flowstagebinding
    identifiers:
      target: !KeyOf flow
      stage: !Find [authentik_stages_user_write.userwritestage, [name, staff-write]]
      order: 10
  - model: authentik_core.group
    identifiers: {name: admins}
  - model: authentik_core.group
    identifiers: {name: helpers}
""")})
    assert response.status_code == 200, text_of(response)
    with app.app_context():
        flow = db.session.scalar(select(Flow).filter_by(slug="sales-new"))
        assert [b.stage.name for b in flow.bindings] == ["staff-write"]
        assert db.session.scalar(select(func.count(Group.id)).filter_by(name="helpers")) == 1


# -- the rule without HTTP ---------------------------------------------------------------------


def test_what_flows_and_invitations_can_assign(app, world):
    from portal.access import Grants

    with app.app_context():
        root = db.session.get(Flow, world["flow:sales-root"])
        assert [g.name for g in access.flow_groups(root)] == ["admins"]
        assert access.flow_groups(db.session.get(Flow, world["flow:sales-open"])) == []
        invite = db.session.get(Invitation, world["invitation:root-invite"])
        assert [g.name for g in access.invitation_groups(invite)] == ["admins", "staff"]
        inviter = Grants(scopes={access.INVITATIONS_MANAGE: {"sales"}})
        with pytest.raises(access.CeilingError) as refused:
            access.check_invitation(inviter, flow=root)
        assert refused.value.group.name == "admins"
        assert str(refused.value).startswith("Its flow “sales-root” " + CEILING)
        access.check_invitation(inviter, db.session.get(Invitation, world["invitation:plain-invite"]))
        flows_admin = Grants(scopes={access.FLOWS_MANAGE: None})
        with pytest.raises(access.CeilingError, match="The flow “sales-root” .*“admins”"):
            access.check_flow_change(flows_admin,
                                     stages=[db.session.get(Stage, world["stage:root-invitation"])])
        access.check_flow_change(Grants(superuser=True), flows=[root])
