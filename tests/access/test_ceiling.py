"""The privilege ceiling: no path lets an admin put people in a group they may not give.

One world for every test: a superuser built the flow "sales-root", whose user-write stage puts
every new user in the superuser group "admins", behind an invitation stage; "sales-open" is an
empty flow; "sales-staff" gives the plain group "staff" but carries the superuser's invitation
"root-invite" to "admins". Each path is tried by each role; a refusal must say 403 (422 for a
blueprint) with the group named, and leave the database exactly as it was. The superuser
succeeds. The world is built once for the module and its rows restored before every test.
"""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal import access, create_app
from portal.auth import service as accounts
from portal.extensions import db
from portal.invitations import service
from portal.models import (
    Flow,
    FlowAuthentication,
    FlowStageBinding,
    Group,
    Invitation,
    OutboxMessage,
    Prompt,
    Role,
    Stage,
    User,
    utcnow,
)

from ..conftest import (
    TEST_PASSWORD,
    _drop_schema,
    _fresh_schema,
    csrf_from,
    database_url,
    numbers_in,
    restore_rows,
    saved_rows,
)
from ..flowkit import make_flow
from ..helpers import future_input, make_member

IMPORT_APPLY = "/admin/flows/import/apply"
ROLES = {  # role -> (permissions, namespaces) of its one group's role
    "flows": (["flows:manage"], []),
    "invitations": (["invitations:manage"], ["sales"]),
    "access": (["access:manage"], []),
}
CEILING = "can put people in the group “admins”, which grants more than you may give"


# -- the world: built once for the module, restored before each test ----------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The app, its superuser's id, the world's ids and the rows to restore before each test.

    Building the world (schema, flows, invitations, one signed-up admin per role) for each of the
    hundred-odd cases took most of this module's minutes; restoring its rows takes milliseconds.
    """
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url(tmp_path_factory.mktemp("ceiling"))})
    _fresh_schema(app)
    with app.app_context():
        admin = accounts.create_user(username="admin", email="admin@example.com",
                                     password=TEST_PASSWORD, name="Ada Admin", superuser=True).id
    ids = _build_world(app, admin)
    for role, (permissions, namespaces) in ROLES.items():
        make_member(app, role, permissions=permissions, namespaces=namespaces)
    yield app, admin, ids, saved_rows(app)
    _drop_schema(app)


@pytest.fixture
def app(built):
    """The module's one app, its database as the world left it (overrides conftest's)."""
    restore_rows(built[0], built[3])
    return built[0]


@pytest.fixture
def admin(app, built) -> int:
    return built[1]


@pytest.fixture
def world(app, built) -> dict:
    return dict(built[2])


def _build_world(app, admin) -> dict:
    with app.app_context():
        admins = Group(name="admins", attributes={}, is_superuser=True)
        staff = Group(name="staff", attributes={})
        db.session.add_all([admins, staff])
        db.session.commit()
        group_ids = {"admins": admins.id, "staff": staff.id}
    make_flow(app, "sales-root", [
        {"type": "invitation", "name": "root-invitation",
         "options": {"continue_flow_without_invitation": False}},
        {"type": "prompt", "name": "root-prompts", "prompts": [{"field_key": "email", "type": "email"}]},
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
        staff_invitation_binding = db.session.scalar(
            select(FlowStageBinding.id).where(FlowStageBinding.flow_id == flows["sales-staff"].id,
                                              FlowStageBinding.stage_id == stages["staff-invitation"]))
        prompt = db.session.scalar(select(Prompt.id).filter_by(name="root-prompts-email"))
        return {**{f"flow:{slug}": f.id for slug, f in flows.items()},
                **{f"stage:{name}": i for name, i in stages.items()},
                **{f"group:{name}": i for name, i in group_ids.items()},
                **{f"invitation:{name}": i.id for name, i in made.items()},
                "binding:root-invitation": invitation_binding,
                "binding:staff-invitation": staff_invitation_binding, "prompt:root-email": prompt}


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
            "roles": sorted((r.name, dumped(r.permissions), dumped(r.namespaces),
                             tuple(sorted(g.name for g in r.groups)))
                            for r in db.session.scalars(select(Role))),
            "prompts": sorted((p.name, p.field_key, p.type, p.initial_value,
                               tuple(sorted(s.name for s in p.stages)))
                              for p in db.session.scalars(select(Prompt))),
            "outbox": db.session.scalar(select(func.count(OutboxMessage.id))),
        }


def sign_in(app, auth, role: str) -> None:
    """Sign in as the superuser or as the world's admin of that role."""
    auth.login("admin" if role == "superuser" else role)


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


def _hide_root_email_prompt(client, ids):
    """The superuser's invitee would sign up with the attacker's address, unseen."""
    return post(client, f"/admin/prompts/{ids['prompt:root-email']}/edit", {
        "name": "root-prompts-email", "field_key": "email", "label": "Email", "type": "hidden",
        "initial_value": "attacker@example.net", "placeholder": "", "help_text": "",
        "order": "0", "choices": "", "max_size_kb": "", "allowed_types": ""})


def _delete_root_email_prompt(client, ids):
    return post(client, f"/admin/prompts/{ids['prompt:root-email']}/delete")


def _delete_staff_flow(client, ids):
    return post(client, f"/admin/flows/{ids['flow:sales-staff']}/delete")


def _rename_staff_flow(client, ids):
    return post(client, f"/admin/flows/{ids['flow:sales-staff']}/edit",
                {"name": "sales-staff", "slug": "hr-staff", "title": "", "designation": "enrollment",
                 "authentication": FlowAuthentication.NONE})


def _unbind_staff_invitation_stage(client, ids):
    return post(client, f"/admin/flows/{ids['flow:sales-staff']}/bindings/"
                        f"{ids['binding:staff-invitation']}/delete")


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
_bp_delete_staff_flow = _import(_blueprint("""\
  - model: authentik_flows.flow
    state: absent
    identifiers: {slug: sales-staff}
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
# "sales-staff" assigns only "staff", but it carries the superuser's "root-invite" (to "admins").
CARRIED = "The flow “sales-staff”, through its invitation “root-invite”, " + CEILING
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
    "hide the flow's email prompt behind a fixed value": (FLOWS, 403, CEILING,
                                                          _hide_root_email_prompt),
    "delete the flow's email prompt": (FLOWS, 403, CEILING, _delete_root_email_prompt),
    # A flow carrying a superuser's invitation hands out its groups as well.
    "delete a flow carrying a superuser's invitation": (FLOWS, 403, CARRIED, _delete_staff_flow),
    "change that flow's slug (its links)": (FLOWS, 403, CARRIED, _rename_staff_flow),
    "unbind that flow's invitation stage": (FLOWS, 403, CARRIED, _unbind_staff_invitation_stage),
    # The blueprint importer (the apply step; the preview runs the same import and rolls back).
    "blueprint binds the stage by !Find": (FLOWS, 422, CEILING, _bp_bind_found_stage),
    "blueprint unbinds the invitation stage": (FLOWS, 422, CEILING, _bp_unbind_invitation_stage),
    "blueprint ticks continue without invitation": (FLOWS, 422, CEILING,
                                                    _bp_continue_without_invitation),
    "blueprint changes the flow's authentication": (FLOWS, 422, CEILING, _bp_open_root_flow),
    "blueprint deletes a flow carrying a superuser's invitation": (FLOWS, 422, CARRIED,
                                                                   _bp_delete_staff_flow),
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
    assert numbers_in(text, "{} invitation(s) left unchanged") == 1 and CEILING in text
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


# -- destroying is changing ------------------------------------------------------------------


def _open_invite(app, admin) -> int:
    """A superuser's plain invitation on "sales-open": within every ceiling, but invitations."""
    with app.app_context():
        flow = db.session.scalar(select(Flow).filter_by(slug="sales-open"))
        return service.create_invitation(
            name="open-invite", flow=flow, expires_at=utcnow() + timedelta(days=7),
            created_by=db.session.get(User, admin)).id


def test_a_flow_whose_invitations_an_admin_may_not_manage_is_not_theirs_to_delete_or_reslug(
        app, client, auth, admin, world):
    invite = _open_invite(app, admin)
    flow_id = world["flow:sales-open"]
    edit = {"name": "Sales open", "slug": "sales-open", "title": "", "designation": "enrollment",
            "authentication": FlowAuthentication.NONE}
    sign_in(app, auth, "flows")
    before = snapshot(app)
    for response in (client.get(f"/admin/flows/{flow_id}/delete"),
                     post(client, f"/admin/flows/{flow_id}/delete"),
                     post(client, f"/admin/flows/{flow_id}/edit", {**edit, "slug": "hr-open"})):
        text = text_of(response)
        assert response.status_code == 403
        assert "would also end its 1 invitation(s) (“open-invite”), which you may not manage" in text
    assert snapshot(app) == before
    # The rest of the flow stays theirs: a new name, the same slug, keeps every link.
    assert post(client, f"/admin/flows/{flow_id}/edit", edit).status_code == 302
    auth.logout()
    # An admin who may manage those invitations may delete the flow, and them with it.
    make_member(app, "both", permissions=[FLOWS, INVITATIONS])
    auth.login("both")
    assert post(client, f"/admin/flows/{flow_id}/delete").status_code == 302
    with app.app_context():
        assert db.session.get(Flow, flow_id) is None and db.session.get(Invitation, invite) is None


def test_a_blueprint_may_not_delete_a_flow_whose_invitations_the_importer_may_not_manage(
        app, client, auth, admin, world):
    _open_invite(app, admin)
    sign_in(app, auth, "flows")
    before = snapshot(app)
    response = post(client, IMPORT_APPLY, {"blueprint": _blueprint("""\
  - model: authentik_flows.flow
    state: absent
    identifiers: {slug: sales-open}
""")})
    assert response.status_code == 422
    assert "which you may not manage" in text_of(response)
    assert snapshot(app) == before


def test_a_blueprint_may_not_change_a_prompt_of_a_flow_beyond_the_ceiling(app, client, auth, world):
    sign_in(app, auth, "flows")
    before = snapshot(app)
    response = post(client, IMPORT_APPLY, {"blueprint": _blueprint("""\
  - model: authentik_stages_prompt.prompt
    identifiers: {name: root-prompts-email}
    attrs: {field_key: email, type: hidden, initial_value: attacker@example.net}
""")})
    assert response.status_code == 422
    assert CEILING in text_of(response)
    assert snapshot(app) == before


# -- accounts and groups that hold more than the admin -------------------------------------------


def _powerful(app, *, active: bool = True) -> int:
    """An account whose group grants "flows: manage" and "access: manage"."""
    make_member(app, "power", permissions=[FLOWS, access.ACCESS_MANAGE])
    with app.app_context():
        user = db.session.scalar(select(User).filter_by(username="power"))
        user.active = active
        db.session.commit()
        return user.id


def test_a_users_admin_may_not_deactivate_or_reactivate_an_account_beyond_their_ceiling(
        app, client, auth, world):
    active = _powerful(app)
    with app.app_context():
        power, staff = (db.session.scalar(select(Group).filter_by(name="power-group")),
                        db.session.get(Group, world["group:staff"]))
        inactive = User(username="fired", email="fired@example.com", attributes={}, active=False,
                        groups=[power])
        staff_member = User(username="clerk", email="clerk@example.com", attributes={},
                            groups=[staff])
        db.session.add_all([inactive, staff_member])
        db.session.commit()
        inactive, staff_member = inactive.id, staff_member.id
    make_member(app, "useradmin", permissions=[access.USERS_MANAGE])
    auth.login("useradmin")
    for user_id, action in ((active, "deactivate"), (inactive, "activate")):
        page = text_of(post(client, f"/admin/users/{user_id}/{action}", follow_redirects=True))
        assert "is in the group “power-group”, which grants more than you may give" in page
    post(client, f"/admin/users/{staff_member}/deactivate")
    with app.app_context():
        assert db.session.get(User, active).active is True
        assert db.session.get(User, inactive).active is False
        assert db.session.get(User, staff_member).active is False  # within the ceiling: done


def test_an_access_admin_may_not_rename_a_group_that_grants_more_than_they_hold(
        app, client, auth, world):
    _powerful(app)
    sign_in(app, auth, "access")
    with app.app_context():
        power = db.session.scalar(select(Group.id).filter_by(name="power-group"))
    page = post(client, f"/admin/access/groups/{power}", {"name": "interns"})
    assert page.status_code == 200
    assert "The group “power-group” grants more than you may give" in text_of(page)
    renamed = post(client, f"/admin/access/groups/{world['group:staff']}", {"name": "helpers"})
    assert renamed.status_code == 302
    with app.app_context():
        assert db.session.get(Group, power).name == "power-group"
        assert db.session.get(Group, world["group:staff"]).name == "helpers"
        grants = access.grants_for(db.session.scalar(select(User).filter_by(username="access")))
        assert access.group_change_refusal(grants, db.session.get(Group, power),
                                           make_superuser=False).startswith("the group “power-group”")
        assert db.session.scalar(select(func.count(Role.id)).filter_by(name="power-role")) == 1


def test_an_access_admin_may_not_bind_or_unbind_a_role_on_a_group_beyond_their_ceiling(
        app, client, auth, world):
    """A role they hold, but on a group that grants more: neither adding it there nor taking it
    away (that would strip an admin above them) is theirs to do."""
    _powerful(app)
    with app.app_context():
        power = db.session.scalar(select(Group).filter_by(name="power-group"))
        shared = Role(name="helpdesk", permissions=[access.ACCESS_MANAGE], groups=[power])
        db.session.add(shared)
        db.session.commit()
        shared, power = shared.id, power.id
        own = db.session.scalar(select(Role.id).filter_by(name="access-role"))
        own_group = db.session.scalar(select(Group.id).filter_by(name="access-group"))
    sign_in(app, auth, "access")
    before = snapshot(app)
    for role_id, name, groups in ((shared, "helpdesk", []), (own, "access-role", [own_group, power])):
        page = post(client, f"/admin/access/roles/{role_id}",
                    {"name": name, "permissions": [access.ACCESS_MANAGE], "groups": groups})
        assert page.status_code == 200
        assert "bound to the group “power-group”, which grants more than you may give" in text_of(page)
    assert snapshot(app) == before
    with app.app_context():
        assert [g.name for g in db.session.get(Role, shared).groups] == ["power-group"]
        assert [g.name for g in db.session.get(Role, own).groups] == ["access-group"]
    # Within the ceiling it still works: their role bound to the plain group too.
    done = post(client, f"/admin/access/roles/{own}", {
        "name": "access-role", "permissions": [access.ACCESS_MANAGE],
        "groups": [own_group, world["group:staff"]]})
    assert done.status_code == 302


def test_re_slugging_a_flow_into_another_namespace_needs_its_invitations_there_too(
        app, client, auth, admin, world):
    """Moving "sales-open" to "hr-open" would hand its invitations to the hr inviters."""
    _open_invite(app, admin)
    make_member(app, "mover", permissions=[FLOWS])
    with app.app_context():
        group = db.session.scalar(select(Group).filter_by(name="mover-group"))
        group.roles.append(Role(name="mover-sales", permissions=[INVITATIONS], namespaces=["sales"]))
        db.session.commit()
    auth.login("mover")
    edit = {"name": "sales-open", "title": "", "designation": "enrollment",
            "authentication": FlowAuthentication.NONE}
    before = snapshot(app)
    page = post(client, f"/admin/flows/{world['flow:sales-open']}/edit", {**edit, "slug": "hr-open"})
    assert page.status_code == 403
    assert "you may not manage" in text_of(page) and "“hr-open”" in text_of(page)
    assert snapshot(app) == before
    moved = post(client, f"/admin/flows/{world['flow:sales-open']}/edit",
                 {**edit, "slug": "sales-open-emea"})
    assert moved.status_code == 302


def test_the_creator_filter_names_only_creators_of_invitations_the_admin_may_see(
        app, client, auth, admin, world):
    make_flow(app, "hr-onboarding", [])
    make_member(app, "hr-lead", permissions=[INVITATIONS])
    with app.app_context():
        service.create_invitation(
            name="hr-only", flow=db.session.scalar(select(Flow).filter_by(slug="hr-onboarding")),
            expires_at=utcnow() + timedelta(days=7),
            created_by=db.session.scalar(select(User).filter_by(username="hr-lead")))
    sign_in(app, auth, "invitations")
    listing = client.get("/admin/invitations/").get_data(as_text=True)
    creators = re.search(r'<select id="creator".*?</select>', listing, re.S).group(0)
    assert re.findall(r'<option value="\d+"[^>]*>([^<]+)</option>', creators) == ["admin"]
    auth.logout()
    sign_in(app, auth, "superuser")
    listing = client.get("/admin/invitations/").get_data(as_text=True)
    creators = re.search(r'<select id="creator".*?</select>', listing, re.S).group(0)
    assert re.findall(r'<option value="\d+"[^>]*>([^<]+)</option>', creators) == ["admin", "hr-lead"]
