"""The privilege ceiling: nobody makes anyone a member of a group they may not assign themselves.

`may_assign` answers it for one group an admin ticks. A person can end up in a group by other
paths too, and every one of them is weighed here:

- a flow puts each person it signs up in the groups of its stages (a user-write stage's
  `create_users_group`; `StageType.assigned_groups` says what each stage type assigns);
- an invitation leads to its own groups plus every group its flow can assign;
- so a flow also hands out the own groups of the invitations it carries (its user-write stage
  applies them): a flow carrying a superuser's invitation to "admins" is as much beyond a flows
  admin as one whose stage assigns "admins" (they could otherwise re-shape the sign-up that
  invitee will walk through: its prompts, its stages, its link).

The rule (one decision for the flow editor, the stage editor, the blueprint importer and every
invitation action): a non-superuser may create, change or delete a flow, its bindings (add,
remove, re-order, condition), a stage's options, or an invitation, only if every group involved,
before and after the change, is one they may assign. So a flow that can hand out more than an
admin holds is read-only to them as a whole, whatever the change: removing its invitation stage,
ticking "continue without invitation", changing who may start it, or binding its superuser's
user-write stage into an open flow of their own. This is deliberately coarser than asking "does
this change open a way in?": that question has many answers (conditions, order, authentication,
options) and any one missed would be a hole; "do not touch what hands out more than you hold"
has one. The refusal names the first group beyond the ceiling.

Destroying is changing: deleting a flow deletes its invitations and changing its slug breaks
their links, so both also need the right to manage every one of those invitations
(`check_flow_invitations`); prompts are part of every flow whose prompt stages show them.
Accounts follow the same rule (`account_change_refusal`), and so do groups themselves
(`group_change_refusal`) and the roles bound to them (`role_change_refusal`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select

from ..extensions import db
from ..models import Flow, FlowStageBinding, Group, Invitation, Prompt, Role, Stage, User
from ..models.invitations import invitation_groups as invitation_group_rows
from . import (
    ACCESS_MANAGE,
    INVITATIONS_MANAGE,
    USERS_MANAGE,
    Grants,
    assignable_groups,
    may_assign,
    role_within,
    within,
)


class CeilingError(PermissionError):
    """Refused: the change involves a group beyond the admin's ceiling (named in the message)."""

    def __init__(self, group: Group | None, source: str, message: str | None = None) -> None:
        self.group, self.source = group, source
        super().__init__(message or (
            f"{source} can put people in the group “{group.name}”, which grants more than you "
            f"may give. Only an admin who may give “{group.name}” can change this."))


# -- what a stage, a flow, an invitation can assign ---------------------------------------------


def stage_groups(stage: Stage) -> list[Group]:
    """The groups a stage puts people in (a transient Stage with new options works too)."""
    from ..flows.stages import stage_type_for  # the stages import services that import access

    try:
        return stage_type_for(stage).assigned_groups()
    except LookupError:  # an unknown type runs nothing, so assigns nothing
        return []


def groups_by_flow(flow_ids: Iterable[int | None]) -> dict[int, list[Group]]:
    """Every group each flow can assign through the stages bound to it, whatever their order or
    condition (one query for all the flows; a flow that assigns nothing maps to [])."""
    ids = {i for i in flow_ids if i is not None}
    found: dict[int, list[Group]] = {i: [] for i in ids}
    if not ids:
        return found
    rows = db.session.execute(
        select(FlowStageBinding.flow_id, Stage).join(FlowStageBinding.stage)
        .where(FlowStageBinding.flow_id.in_(ids)).order_by(FlowStageBinding.order, Stage.id))
    for flow_id, stage in rows:
        found[flow_id].extend(g for g in stage_groups(stage) if g not in found[flow_id])
    return found


def flow_groups(flow: Flow) -> list[Group]:
    """Every group a flow can assign (reads the database, so flushed changes count)."""
    return groups_by_flow([flow.id]).get(flow.id, []) if flow.id is not None else []


def flows_using(stage: Stage) -> list[Flow]:
    if stage.id is None:
        return []
    return list(db.session.scalars(
        select(Flow).join(FlowStageBinding).where(FlowStageBinding.stage_id == stage.id)
        .distinct().order_by(Flow.slug)))


def carried_invitation_groups(flow_ids: Iterable[int | None]) -> dict[int, list[tuple[str, Group]]]:
    """The own groups of the invitations each flow carries, as (invitation name, group), in
    one query. Every invitation counts, whatever its status: deleting the flow deletes it too."""
    ids = {i for i in flow_ids if i is not None}
    found: dict[int, list[tuple[str, Group]]] = {i: [] for i in ids}
    if not ids:
        return found
    rows = db.session.execute(
        select(Invitation.flow_id, Invitation.name, Group)
        .join(invitation_group_rows, invitation_group_rows.c.invitation_id == Invitation.id)
        .join(Group, Group.id == invitation_group_rows.c.group_id)
        .where(Invitation.flow_id.in_(ids)).order_by(Invitation.id, Group.name))
    for flow_id, name, group in rows:
        found[flow_id].append((name, group))
    return found


def invitation_groups(invitation: Invitation) -> list[Group]:
    """Every group an invitation can lead to: its own and every group its flow can assign."""
    own = list(invitation.groups)
    return own + [g for g in flow_groups(invitation.flow) if g not in own]


# -- the decision ---------------------------------------------------------------------------------


def ensure_within_ceiling(grants: Grants, sources: Iterable[tuple[str, Group | None]]) -> None:
    """The one decision: raise CeilingError for the first (where, group) the admin may not
    assign. Superusers may assign every group."""
    if grants.superuser:
        return
    allowed: set[int] | None = None
    for source, group in sources:
        if group is None:
            continue
        if allowed is None:  # looked up once, and only when there is a group to weigh
            allowed = {g.id for g in assignable_groups(grants)}
        if group.id not in allowed:
            raise CeilingError(group, source)


def check_flow_change(grants: Grants, *, flows: Iterable[Flow] = (), stages: Iterable[Stage] = (),
                      adding: Iterable[Stage] = (), prompts: Iterable[Prompt] = ()) -> None:
    """May this admin make a change to flows, stages and prompts? CeilingError names the group
    if not.

    `flows`: flows created, changed or deleted, or whose bindings change: what they assign now,
    through their stages and the invitations they carry. `stages`: stages whose options change,
    or deleted: what they assign and what every flow using them assigns. `adding`: stages as the
    change leaves them (a stage being bound, a stage's new options): what the change adds.
    `prompts`: prompts changed or deleted: weighed as a change to every stage showing them.
    Pass the state before the change and what it adds, or call it again after a flush with the
    state after.
    """
    if grants.superuser:
        return
    stages = [*stages, *(s for p in prompts for s in p.stages)]
    ensure_within_ceiling(grants, _flow_sources(flows, stages, adding))


def _flow_sources(flows, stages, adding):
    for flow in flows:
        yield from _what_flow_assigns(flow, f"The flow “{flow.slug}”")
    for stage in [*stages, *adding]:
        for group in stage_groups(stage):
            yield f"The stage “{stage.name}”", group
    for stage in stages:
        for flow in flows_using(stage):
            yield from _what_flow_assigns(flow, f"The flow “{flow.slug}” (it uses the stage "
                                                f"“{stage.name}”)")


def _what_flow_assigns(flow: Flow, label: str):
    """Its stages' groups, then its invitations' own groups (looked up only if those pass)."""
    for group in flow_groups(flow):
        yield label, group
    if flow.id is None:
        return
    for name, group in carried_invitation_groups([flow.id])[flow.id]:
        yield f"{label}, through its invitation “{name}”,", group


def check_flow_invitations(grants: Grants, flow: Flow, *, doing: str,
                           new_slug: str | None = None) -> None:
    """Deleting a flow deletes its invitations, changing its slug breaks their links: `doing`
    that needs the right to manage every invitation the flow carries ("invitations: manage" for
    its namespace, and each within the ceiling). A new slug moves them to another namespace, so
    it needs "invitations: manage" there too. CeilingError says which one if not."""
    if grants.superuser or flow.id is None:
        return
    carried = list(db.session.scalars(select(Invitation).filter_by(flow_id=flow.id)
                                      .order_by(Invitation.name)))
    if not carried:
        return
    for slug in [flow.slug, *([new_slug] if new_slug else [])]:
        if not grants.can(INVITATIONS_MANAGE, slug):
            names = ", ".join(f"“{i.name}”" for i in carried[:3]) + (", …" if len(carried) > 3
                                                                      else "")
            raise CeilingError(None, f"The flow “{flow.slug}”", (
                f"{doing[0].upper()}{doing[1:]} the flow “{flow.slug}” would also end its "
                f"{len(carried)} invitation(s) ({names}), which you may not manage as "
                f"invitations of “{slug}”. Only an admin who may manage the invitations of "
                f"“{slug}” can do this."))
    refusals = invitation_refusals(grants, carried)
    if refusals:
        raise next(iter(refusals.values()))


def flow_within_ceiling(grants: Grants, flow: Flow) -> bool:
    try:
        check_flow_change(grants, flows=[flow])
    except CeilingError:
        return False
    return True


def flows_within_ceiling(grants: Grants, flows: Iterable[Flow]) -> list[Flow]:
    """The flows an invitation by this admin may lead to (for the form's flow choices), with a
    fixed number of queries."""
    flows = list(flows)
    if grants.superuser:
        return flows
    allowed = {g.id for g in assignable_groups(grants)}
    by_flow = groups_by_flow(f.id for f in flows)
    return [f for f in flows if all(g.id in allowed for g in by_flow.get(f.id, []))]


def direct_role_problem(grants: Grants, role: Role, namespaces: Iterable[str]) -> str | None:
    """Why this admin may not attach `role` directly, limited to `namespaces` (empty: the role's
    own), to an invitation or a member; None if they may. The one rule for every form and
    command: a role of the current tenant only; each namespace well-formed and inside the role's
    own (a limit can only narrow a role); granting nothing beyond what the admin holds, in their
    namespaces (the same ceiling as for groups)."""
    from ..tenants import current_tenant
    from . import direct_namespaces, in_namespace, namespace_problem

    if role.tenant_id != current_tenant().id:
        return "Only roles of this tenant can be given."
    namespaces = list(namespaces)
    for namespace in namespaces:
        problem = namespace_problem(namespace)
        if problem:
            return problem
        own = role.namespaces or []
        if own and not any(in_namespace(namespace, o) for o in own):
            return (f"“{namespace}” is outside the role's own namespaces ({', '.join(own)}); "
                    f"a limit can only narrow the role.")
    if not grants.superuser and not within(grants, role.permissions or [],
                                           direct_namespaces(role, namespaces)):
        return (f"The role “{role.name}” grants more than you hold there; you can only give "
                f"permissions you hold yourself, in your own namespaces{_yours(grants, role)}.")
    return None


def direct_role_problems(grants: Grants, roles: Sequence[tuple[Role, Sequence[str]]]
                         ) -> dict[int, str]:
    """direct_role_problem of each entry, by its position (empty when all may be given): so an
    API can name the entry each problem belongs to, as a form shows it beside its row."""
    problems = {index: direct_role_problem(grants, role, namespaces)
                for index, (role, namespaces) in enumerate(roles)}
    return {index: problem for index, problem in problems.items() if problem}


def _yours(grants: Grants, role: Role) -> str:
    """ " (yours: sales, hr)": the admin's namespaces for the role's limited permissions."""
    from . import ALL

    mine = [grants.namespaces(p) for p in role.permissions or []]
    if any(m is not ALL and not m for m in mine):  # a permission they do not hold at all
        return ""
    names = sorted({n for m in mine if m is not ALL for n in m})
    return f" (limit it to yours: {', '.join(names)})" if names else ""


def direct_role_refusal(grants: Grants, roles: Iterable[tuple[Role, Iterable[str]]], *,
                        stored: Iterable[tuple[Role, Iterable[str]]] = ()) -> str | None:
    """Why this admin may not attach these roles directly (each with the namespaces it is
    limited to); None if they may. `stored`: roles an existing invitation already attaches,
    weighed against the ceiling only (what was well-formed when saved stays so)."""
    for role, namespaces in roles:
        problem = direct_role_problem(grants, role, namespaces)
        if problem:
            return problem if role.name in problem or problem.startswith("Only") else (
                f"The role “{role.name}”: {problem}")
    from ..tenants import current_tenant
    from . import NOWHERE, direct_namespaces

    for role, namespaces in stored:
        if role.tenant_id != current_tenant().id:
            return "Only roles of this tenant can be given."
        covered = direct_namespaces(role, list(namespaces))
        if covered == [NOWHERE]:  # limited outside its own: it grants nothing
            continue
        if not grants.superuser and not within(grants, role.permissions or [], covered):
            return (f"The role “{role.name}” grants more than you hold there; you can only give "
                    f"permissions you hold yourself, in your own namespaces.")
    return None


def check_invitation(grants: Grants, invitation: Invitation | None = None, *,
                     flow: Flow | None = None, groups: Iterable[Group] | None = None,
                     roles: Iterable[tuple[Role, Iterable[str]]] = ()) -> None:
    """May this admin create, see the link of, resend, extend, edit, duplicate, revoke or delete
    this invitation? Every group it can lead to must be within their ceiling.

    Give `invitation` for an existing one; `flow` and `groups` for the invitation as it is about
    to be (a new one, or an edit's new flow and groups): both are weighed when both are given.
    Roles attached directly (`roles`, and the invitation's own) are weighed too.
    """
    stored = [(d.role, d.namespaces or []) for d in
              (invitation.direct_roles if invitation is not None else [])]
    refusal = direct_role_refusal(grants, roles, stored=stored)
    if refusal:
        raise CeilingError(None, "This invitation", refusal)
    if grants.superuser:
        return
    refusal = invitation_refusals(grants, [invitation] if invitation is not None else [],
                                  extra=(flow, list(groups or ())))
    if refusal:
        raise next(iter(refusal.values()))


def check_instance_invitation(grants: Grants, *, instance: bool, superuser: bool,
                              flow: Flow | None = None, groups: Iterable[Group] = (),
                              roles: Iterable = ()) -> None:
    """The one rule for invitations to the whole instance, which every path creating an
    invitation reaches (service.create_invitation): only an instance superadmin invites to the
    instance or makes a superadmin by invitation (the privilege ceiling: nobody else holds
    that). Such an invitation gives an account and nothing of a tenant: no groups, no roles,
    and only an instance-wide flow. CeilingError otherwise."""
    if not grants.superuser:
        raise CeilingError(None, "This invitation",
                           "Only an instance superadmin may invite to the whole instance or "
                           "make someone a superadmin.")
    if superuser and not instance:
        raise CeilingError(None, "This invitation", "Only an invitation to the instance can make "
                                                    "its invitee a superadmin.")
    if list(groups) or list(roles):
        raise CeilingError(None, "This invitation", "An invitation to the instance gives no "
                                                    "tenant's groups or roles.")
    if flow is not None and flow.tenant_id is not None:
        raise CeilingError(None, "This invitation", "An invitation to the instance works only "
                                                    "on an instance-wide flow.")


def invitation_refusals(grants: Grants, invitations: Iterable[Invitation], *,
                        extra: tuple[Flow | None, list[Group]] | None = None,
                        ) -> dict[int | None, CeilingError]:
    """For a list page or an export: the refusal of each invitation beyond the ceiling, by id,
    with a fixed number of queries (the flows' groups are looked up together). `extra` is an
    invitation not stored yet, as (flow, groups), reported under the id None."""
    if grants.superuser:
        return {}
    invitations = list(invitations)
    candidates = [(i.id, i.flow, list(i.groups)) for i in invitations]
    if extra is not None:
        candidates.append((None, *extra))
    by_flow = groups_by_flow(flow.id for _, flow, _ in candidates if flow is not None)
    refusals: dict[int | None, CeilingError] = {}
    allowed = {g.id for g in assignable_groups(grants)}
    for key, flow, own in candidates:
        sources = [("This invitation", g) for g in own]
        if flow is not None:
            sources += [(f"Its flow “{flow.slug}”", g) for g in by_flow.get(flow.id, [])]
        for source, group in sources:
            if group.id not in allowed:
                refusals[key] = CeilingError(group, source)
                break
    return refusals


# -- groups and accounts themselves -----------------------------------------------------------


def group_change_refusal(grants: Grants, group: Group | None, *, make_superuser: bool) -> str | None:
    """Why this admin may not create (`group` None), change or delete a group; None if they may.

    The group editor and the blueprint importer ask the same question: only a superuser makes a
    superuser group or touches one; changing or deleting any other existing group needs "Access"
    everywhere, and the group must be one they may give (renaming a group that grants more than
    they hold would dress it up as another: the next admin who ticks it hands out more than they
    think). Creating a plain group needs nothing more: it grants nothing until a role is bound.
    """
    if grants.superuser:
        return None
    if group is not None and group.is_superuser:
        return f"only a superuser can change or delete the superuser group “{group.name}”"
    if make_superuser:
        return "only a superuser can make a superuser group"
    if group is not None and not grants.can_everywhere(ACCESS_MANAGE):
        return (f"only an admin who may edit groups (“Access” for every namespace) can change or "
                f"delete the group “{group.name}”")
    if group is not None and not may_assign(grants, group):
        return (f"the group “{group.name}” grants more than you may give; only an admin who may "
                f"give it can change or delete it")
    return None


def role_change_refusal(grants: Grants, role: Role | None, *, permissions, namespaces,
                        groups: Iterable[Group]) -> str | None:
    """Why this admin may not create (`role` None) or change a role to these permissions,
    namespaces and groups; None if they may.

    Nobody hands out, or takes away, access they do not hold: the role must grant nothing beyond
    them, before and after; and every group it is bound to, before and after, must be one they
    may give (binding their own permission onto a group that grants more, or unbinding it from
    one, is changing a group beyond their ceiling: it could strip an admin above them).
    """
    if grants.superuser:
        return None
    if role is not None and not role_within(grants, role):
        return ("This role grants more than you hold; only an admin with all of its permissions "
                "can change it.")
    if not within(grants, permissions, namespaces):
        return "You can only give permissions you hold yourself, in your own namespaces."
    allowed = {g.id for g in assignable_groups(grants)}
    for group in [*(role.groups if role is not None else []), *groups]:
        if group.id not in allowed:
            return (f"This role is (or would be) bound to the group “{group.name}”, which grants "
                    f"more than you may give. Only an admin who may give “{group.name}” can "
                    f"change its roles.")
    return None


def account_change_refusal(grants: Grants, user: User) -> str | None:
    """Why this admin may not change (deactivate, activate again, remove an authenticator of)
    this account; None if they may. Users: manage is needed first.

    The same ceiling: an account in a group beyond it holds more than the admin may give, so it
    is not theirs to lock out (or to bring back). Read from the account's groups, not its grants:
    an inactive account has none, and reactivating must not be a way around the rule.
    """
    if grants.superuser:
        return None
    if not grants.can(USERS_MANAGE):
        return "You may not change other people's accounts."
    if user.is_superuser or any(g.is_superuser for g in user.groups):
        return "Only a superuser may change a superuser's account."
    from ..tenants import current_tenant, tenants_for

    here = current_tenant().id
    if any(t.id != here for t in tenants_for(user)) or any(g.tenant_id != here for g in user.groups):
        # Accounts are instance-wide: locking one out here would lock it out of other tenants.
        return (f"{user.username} is also a member of another tenant; only an instance "
                f"administrator can change this account.")
    allowed = {g.id for g in assignable_groups(grants)}
    for group in user.groups:
        if group.id not in allowed:
            return (f"{user.username} is in the group “{group.name}”, which grants more than you "
                    f"may give. Only an admin who may give “{group.name}” can change this account.")
    return None
