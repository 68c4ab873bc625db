"""Invitations over the API: every action the admin pages offer (tests/api/test_parity.py checks
that), through the same service, scope and ceiling as the pages."""

from __future__ import annotations

import json

from flask import after_this_request, current_app
from flask_smorest import Blueprint
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..access import (
    INVITATIONS_MANAGE,
    CeilingError,
    assignable_groups,
    check_invitation,
    invitation_refusals,
)
from ..access.ceiling import direct_role_problems
from ..extensions import db
from ..invitations import bulk, scope, service
from ..invitations.attributes import parse_attributes
from ..mail import mail_configured
from ..mail import retry as retry_email
from ..mail.web import deliver_on_close
from ..models import (
    Flow,
    FlowDesignation,
    Invitation,
    InvitationRole,
    InvitationUse,
    OutboxMessage,
    utcnow,
)
from ..tenants import visible
from ..urls import base_url
from . import schemas as s
from .auth import Caller, require
from .problems import ApiError, field_error

blp = Blueprint("api_invitations", __name__, url_prefix="/invitations",
                description="Invitations: list, create (one, or in bulk), and their lifecycle.")


# -- helpers -----------------------------------------------------------------------------------


def _manager() -> Caller:
    return require(INVITATIONS_MANAGE)


def _get(who: Caller, invitation_id: int, *, to_manage: bool = True) -> Invitation:
    try:
        return scope.get_invitation(who.grants, invitation_id, to_manage=to_manage)
    except scope.InvitationNotFound:
        raise ApiError(404, "No such invitation (or not one you may see).") from None
    except CeilingError as exc:
        raise ApiError(403, str(exc), title="Beyond what you may give") from None


def _flow(who: Caller, slug: str) -> Flow:
    """An enrollment flow in the caller's namespaces (else 422 on `flow`), within their ceiling
    (else 403 naming the group)."""
    flow = db.session.scalar(select(Flow).filter_by(slug=slug).where(visible(Flow)))
    if flow is None or flow.designation != FlowDesignation.ENROLLMENT or \
            not scope.flow_allowed(who.grants, flow):
        raise field_error("flow", f"No enrollment flow {slug!r} that you may invite to.")
    try:
        scope.check_flow_choice(who.grants, flow)
    except CeilingError as exc:
        raise ApiError(403, str(exc), title="Beyond what you may give") from None
    return flow


def _groups(who: Caller, names, field: str = "groups") -> list:
    """Groups by name: unknown ones are a field error, ones beyond the ceiling a 403."""
    if not names:
        return []
    from ..models import Group

    found = {g.name.lower(): g for g in db.session.scalars(select(Group).where(visible(Group)))}
    allowed = {g.id for g in assignable_groups(who.grants)}
    chosen = []
    for name in names:
        group = found.get(name.strip().lower())
        if group is None:
            raise field_error(field, f"There is no group {name!r}.")
        if group.id not in allowed:
            raise ApiError(403, str(CeilingError(group, "This invitation")),
                           title="Beyond what you may give")
        if group not in chosen:
            chosen.append(group)
    return chosen


def _roles(who: Caller, entries, field: str = "roles") -> list:
    """Roles attached directly, as [(Role, namespaces)]: unknown roles, namespaces outside a
    role and roles beyond the ceiling are field errors (422) on their own entry, through
    invitations.roles (the rule check_invitation applies on the pages too)."""
    if not entries:
        return []
    from ..models import Role

    found = {r.name.lower(): r for r in db.session.scalars(select(Role).where(visible(Role)))}
    chosen, errors = [], []
    for index, entry in enumerate(entries):
        role = found.get(entry["role"].strip().lower())
        if role is None:
            errors.append({"field": f"{field}.{index}.role", "location": "json",
                           "message": f"There is no role {entry['role']!r}."})
        elif any(r is role for r, _ in chosen):
            errors.append({"field": f"{field}.{index}.role", "location": "json",
                           "message": f"The role {role.name!r} is given twice."})
        else:
            chosen.append((role, list(dict.fromkeys(n.strip() for n in entry["namespaces"]))))
    if not errors:
        problems = direct_role_problems(who.grants, chosen)
        errors = [{"field": f"{field}.{i}", "location": "json", "message": m}
                  for i, m in sorted(problems.items())]
    if errors:
        raise ApiError(422, "Some roles cannot be given; see errors.", title="Invalid request",
                       errors=errors)
    return chosen


def _check(who: Caller, invitation=None, **about) -> None:
    """The pages' one ceiling for the invitation as it is about to be (check_invitation)."""
    try:
        check_invitation(who.grants, invitation, **about)
    except CeilingError as exc:
        raise ApiError(403, str(exc), title="Beyond what you may give") from None


def _expiry(value, *, field: str = "expires_at", unchanged_from=None):
    if value is None:
        return (utcnow() + current_app.config["INVITATION_EXPIRE_AFTER_DELTA"]).replace(microsecond=0)
    problem = scope.expiry_problem(value, unchanged_from=unchanged_from)
    if problem:
        raise field_error(field, problem)
    return value


def _attributes(value: dict | None) -> dict:
    """Through the one attributes parser (its bounds hold for the API too)."""
    if not value:
        return {}
    try:
        return parse_attributes(json.dumps(value))
    except (ValueError, TypeError) as exc:
        raise field_error("attributes", str(exc)) from None


def _domains(values) -> list[str]:
    domains = service.normalise_domains(values or [])
    for domain in domains:
        problem = service.domain_problem(domain)
        if problem:
            raise field_error("allowed_domains", problem)
    return domains


def _deliver(message_ids: list[int]) -> None:
    if message_ids and len(message_ids) <= current_app.config.get("OUTBOX_AFTER_RESPONSE_LIMIT", 50):
        after_this_request(lambda response: deliver_on_close(response, list(message_ids)))


def _queued(invitations) -> list[int]:
    from ..models import OutboxStatus

    ids = [i.id for i in invitations]
    if not ids:
        return []
    return list(db.session.scalars(select(OutboxMessage.id).where(
        OutboxMessage.invitation_id.in_(ids), OutboxMessage.status == OutboxStatus.QUEUED)))


def shape(invitation: Invitation, *, locked: CeilingError | None = None) -> dict:
    """An invitation as the API shows it (links only in `detail`)."""
    return {
        "id": invitation.id, "name": invitation.name,
        "status": service.status_of(invitation).key,
        "flow": invitation.flow, "email": invitation.email, "cc": invitation.cc or [],
        "bcc": invitation.bcc or [], "single_use": invitation.single_use,
        "max_uses": invitation.max_uses, "use_count": invitation.use_count,
        "allowed_domains": invitation.allowed_domains or [], "groups": invitation.groups,
        "roles": [{"id": d.role.id, "name": d.role.name, "namespaces": d.namespaces or []}
                  for d in sorted(invitation.direct_roles, key=lambda d: d.role.name)],
        "attributes": invitation.attributes or {}, "message": invitation.message or "",
        "created_at": invitation.created_at, "expires_at": invitation.expires_at,
        "revoked_at": invitation.revoked_at, "created_by": invitation.created_by,
        "read_only": str(locked) if locked else None,
    }


def detail(who: Caller, invitation: Invitation) -> dict:
    locked = invitation_refusals(who.grants, [invitation]).get(invitation.id)
    valid = service.status_of(invitation) is service.InvitationStatus.VALID
    emails = db.session.scalars(select(OutboxMessage).filter_by(invitation_id=invitation.id)
                                .order_by(OutboxMessage.id)).all()
    return {**shape(invitation, locked=locked),
            "link": service.invitation_link(invitation, base_url()) if valid and locked is None
            else None,
            "emails": [{"id": m.id, "status": m.status, "attempts": m.attempts or 0,
                        "created_at": m.created_at} for m in emails]}


def _refused(exc: service.ActionRefused):
    return ApiError(409, str(exc), title="Not possible now")


# -- list, links --------------------------------------------------------------------------------


def _filters(args: dict, who: Caller) -> dict:
    flow_id = None
    if args.get("flow"):
        flow = db.session.scalar(select(Flow).filter_by(slug=args["flow"]).where(visible(Flow)))
        flow_id = flow.id if flow is not None else -1  # an unknown slug matches nothing
    return {"search": args.get("q", ""), "status": args.get("status", ""), "flow_id": flow_id,
            "creator_id": args.get("creator"), "sort": args.get("sort", "-created"),
            "flow_ids": scope.allowed_flow_ids(who.grants)}


@blp.route("/")
@blp.arguments(s.InvitationListArgs, location="query")
@blp.response(200, s.InvitationPage)
def list_invitations(args):
    """The invitations you may see, filtered and sorted as on the admin list."""
    who = _manager()
    query = service.list_query(**_filters(args, who)).options(
        selectinload(Invitation.direct_roles).selectinload(InvitationRole.role))
    page, per_page = args["page"], args["per_page"]
    from ..pagination import LastPageKnowsTheTotal

    result = LastPageKnowsTheTotal(select=query, session=db.session(), per_page=per_page,
                                   page=min(page, 2**62 // per_page), error_out=False)
    locked = invitation_refusals(who.grants, result.items)
    return {"items": [shape(i, locked=locked.get(i.id)) for i in result.items],
            "page": page, "per_page": per_page, "total": result.total or 0}


@blp.route("/links")
@blp.arguments(s.LinksArgs, location="query")
@blp.response(200, s.LinkSchema(many=True))
def pending_links(args):
    """The pending invitations of the filter with their links (the page's links.csv)."""
    who = _manager()
    query = service.list_query(**{**_filters(args, who), "status": "pending"}).limit(5000)
    invitations = list(db.session.scalars(query))
    hidden = invitation_refusals(who.grants, invitations)
    root = base_url()
    return [{"id": i.id, "name": i.name, "email": i.email, "expires_at": i.expires_at,
             "link": service.invitation_link(i, root)} for i in invitations if i.id not in hidden]


# -- create ---------------------------------------------------------------------------------------


@blp.route("/", methods=["POST"])
@blp.arguments(s.InvitationCreate)
@blp.response(201, s.InvitationCreated)
def create_invitation(data):
    """One invitation: a link to share (give `name`), or for one person (give `email`)."""
    who = _manager()
    flow = _flow(who, data["flow"])
    groups = _groups(who, data.get("groups"))
    roles = _roles(who, data.get("roles"))
    _check(who, flow=flow, groups=groups, roles=roles)
    options = dict(flow=flow, expires_at=_expiry(data.get("expires_at")),
                   attributes=_attributes(data.get("attributes")),
                   message=(data.get("message") or "").strip(), groups=groups, roles=roles)
    name = (data.get("name") or "").strip()
    if data.get("email"):
        if data.get("single_use") is False or data.get("max_uses") or data.get("allowed_domains"):
            raise field_error("email", "An invitation for one address is single use and for that "
                                       "address only: leave out single_use, max_uses and "
                                       "allowed_domains.")
        from ..admin.forms import normalise_address

        try:
            address = normalise_address(data["email"])
            cc = [normalise_address(a) for a in data.get("cc") or []]
            bcc = [normalise_address(a) for a in data.get("bcc") or []]
        except ValueError as exc:
            raise field_error("email", str(exc)) from None
        if data["send_email"]:
            created, emailed = service.invite_recipients(
                [address], name=name, cc=cc, bcc=bcc, base_url=base_url(), created_by=who.user,
                ip=who.ip, **options)
        else:
            created = [service.create_invitation(name=(name or address)[:255], email=address,
                                                 created_by=who.user, ip=who.ip, **options)]
            emailed = False
        invitation = created[0]
        _deliver(_queued(created))
    else:
        if data.get("cc") or data.get("bcc"):
            raise field_error("cc", "CC and BCC go with an email address.")
        if not name:
            raise field_error("name", "Give the link a name so you can find it later.")
        invitation = service.create_invitation(
            name=name, single_use=bool(data.get("single_use")), max_uses=data.get("max_uses"),
            allowed_domains=_domains(data.get("allowed_domains")), created_by=who.user,
            ip=who.ip, **options)
        emailed = False
    return {**detail(who, invitation), "emailed": emailed}


@blp.route("/bulk", methods=["POST"])
@blp.arguments(s.BulkCreate)
@blp.response(200, s.BulkResult)
def bulk_create(data):
    """Many recipient-bound invitations; each row answers for itself (bad address, duplicate,
    already invited, unknown group); an address with an account is invited (its owner accepts),
    and noted as such to callers who may see accounts. With dry_run nothing is created."""
    who = _manager()
    flow = _flow(who, data["flow"])
    shared = _groups(who, data.get("groups"))
    roles = _roles(who, data["roles"])
    _check(who, flow=flow, groups=shared, roles=roles)
    expires_at = _expiry(data.get("expires_at"))
    rows = [bulk.Row(line=n, email=r["email"], name=r.get("name", ""), groups=r.get("groups", []))
            for n, r in enumerate(data["rows"], start=1)]
    for row, raw in zip(rows, data["rows"], strict=True):
        try:
            row.attributes = parse_attributes(json.dumps(raw.get("attributes") or {}))
        except (ValueError, TypeError) as exc:
            row.problem = f"Bad attributes: {exc}"
    rows = bulk.check(rows, flow_id=flow.id, assignable=assignable_groups(who.grants),
                      viewer=who.grants)
    created: list[Invitation] = []
    emailed = mail_configured()
    if not data["dry_run"]:
        created = bulk.create(rows, base_url=base_url(), email=emailed, created_by=who.user,
                              ip=who.ip, flow=flow, expires_at=expires_at,
                              message=data.get("message", "").strip(), groups=shared,
                              roles=roles)
        _deliver(_queued(created))
    by_email = {i.email.lower(): i.id for i in created}
    return {"created": len(created), "skipped": sum(1 for r in rows if not r.ok),
            "emailed": emailed and bool(created), "dry_run": data["dry_run"],
            "rows": [{"row": r.line, "email": r.email, "ok": r.ok, "problem": r.problem or None,
                      "note": r.note or None,
                      "invitation_id": by_email.get(r.email.lower()) if r.ok else None}
                     for r in rows]}


@blp.route("/bulk-action", methods=["POST"])
@blp.arguments(s.BulkAction)
@blp.response(200, s.BulkActionResult)
def bulk_action(data):
    """Revoke or delete several invitations; those beyond your ceiling are left unchanged."""
    who = _manager()
    chosen, locked = scope.actionable(who.grants, data["ids"])
    if data["action"] == "delete":
        count = service.delete_many(chosen, actor=who.user, ip=who.ip)
    else:
        count = service.revoke_many(chosen, actor=who.user, ip=who.ip)
    return {"action": data["action"], "changed": count,
            "left_unchanged": [{"id": k, "reason": str(v)} for k, v in locked.items()]}


# -- one invitation ----------------------------------------------------------------------------


@blp.route("/<int:invitation_id>")
@blp.response(200, s.InvitationDetailSchema)
def get_invitation(invitation_id: int):
    """One invitation, with its link while it is pending and within your ceiling."""
    who = _manager()
    return detail(who, _get(who, invitation_id, to_manage=False))


@blp.route("/<int:invitation_id>", methods=["PATCH"])
@blp.arguments(s.InvitationFields)
@blp.response(200, s.InvitationDetailSchema)
def update_invitation(data, invitation_id: int):
    """Change what is given; fields left out keep their value."""
    who = _manager()
    invitation = _get(who, invitation_id)
    changes: dict = {}
    if "name" in data:
        if not data["name"].strip():
            raise field_error("name", "The name cannot be empty.")
        changes["name"] = data["name"].strip()
    if "flow" in data:
        changes["flow"] = _flow(who, data["flow"])
    if "expires_at" in data:
        changes["expires_at"] = _expiry(data["expires_at"], unchanged_from=invitation.expires_at)
    if "attributes" in data:
        changes["attributes"] = _attributes(data["attributes"])
    if "message" in data:
        changes["message"] = data["message"].strip()
    if "groups" in data:
        changes["groups"] = scope.kept_groups(who.grants, invitation, _groups(who, data["groups"]))
    if "roles" in data:  # replaces the list; the invitation's own roles passed _get's ceiling
        changes["roles"] = _roles(who, data["roles"])
        _check(who, roles=changes["roles"])
    for key in ("single_use", "max_uses", "allowed_domains"):
        if key in data:
            if invitation.email:
                raise field_error(key, "An invitation for one address is single use, for that "
                                       "address only.")
            changes[key] = _domains(data[key]) if key == "allowed_domains" else data[key]
    if "single_use" in changes and changes["single_use"] is None:
        changes["single_use"] = False
    service.update_invitation(invitation, **changes)
    return detail(who, invitation)


@blp.route("/<int:invitation_id>", methods=["DELETE"])
@blp.response(204)
def delete_invitation(invitation_id: int):
    """Delete it; its link stops working at once (accounts made with it are kept)."""
    who = _manager()
    service.delete_invitation(_get(who, invitation_id), actor=who.user, ip=who.ip)


@blp.route("/<int:invitation_id>/revoke", methods=["POST"])
@blp.response(200, s.ActionResult)
def revoke_invitation(invitation_id: int):
    """Revoke it: the link stops working; it stays listed as revoked."""
    who = _manager()
    invitation = _get(who, invitation_id)
    changed = service.revoke_many([invitation], actor=who.user, ip=who.ip) == 1
    return {"changed": changed, "invitation": detail(who, invitation)}


@blp.route("/<int:invitation_id>/extend", methods=["POST"])
@blp.arguments(s.ExpiryArgs)
@blp.response(200, s.ActionResult)
def extend_invitation(data, invitation_id: int):
    """A later expiry for the same link."""
    who = _manager()
    invitation = _get(who, invitation_id)
    expires_at = _expiry(data["expires_at"])
    try:
        service.extend(invitation, expires_at=expires_at, actor=who.user, ip=who.ip)
    except service.ActionRefused as exc:
        raise _refused(exc) from None
    return {"changed": True, "invitation": detail(who, invitation)}


@blp.route("/<int:invitation_id>/resend", methods=["POST"])
@blp.arguments(s.ResendArgs)
@blp.response(200, s.ActionResult)
def resend_invitation(data, invitation_id: int):
    """A new link and expiry (the old link stops working), emailed when it can be."""
    who = _manager()
    invitation = _get(who, invitation_id)
    expires_at = _expiry(data.get("expires_at"))
    try:
        service.resend(invitation, expires_at=expires_at, base_url=base_url(), actor=who.user,
                       ip=who.ip)
    except service.ActionRefused as exc:
        raise _refused(exc) from None
    _deliver(_queued([invitation]))
    return {"changed": True, "invitation": detail(who, invitation)}


@blp.route("/<int:invitation_id>/send-email", methods=["POST"])
@blp.response(202, s.SentSchema)
def send_invitation_email(invitation_id: int):
    """Email the invitation now, with its current link (needs an address and a mail server)."""
    who = _manager()
    invitation = _get(who, invitation_id)
    try:
        message = service.send_email_now(invitation, base_url=base_url(), actor=who.user, ip=who.ip)
    except service.ActionRefused as exc:
        raise _refused(exc) from None
    _deliver([message.id])
    return {"queued": True, "message_id": message.id}


@blp.route("/<int:invitation_id>/emails/<int:message_id>/retry", methods=["POST"])
@blp.response(202, s.SentSchema)
def retry_invitation_email(invitation_id: int, message_id: int):
    """Queue a failed email of this invitation again."""
    who = _manager()
    invitation = _get(who, invitation_id)
    message = db.session.get(OutboxMessage, message_id)
    if message is None or message.invitation_id != invitation.id:
        raise ApiError(404, "No such email of this invitation.")
    if not retry_email(message):
        db.session.rollback()
        raise ApiError(409, f"Only an email that failed can be sent again; this one is "
                            f"{message.status.lower()}.", title="Not possible now")
    db.session.commit()
    _deliver([message.id])
    return {"queued": True, "message_id": message.id}


@blp.route("/<int:invitation_id>/uses")
@blp.response(200, s.UseSchema(many=True))
def invitation_uses(invitation_id: int):
    """Who enrolled with it, and when (authentik's used_by)."""
    who = _manager()
    invitation = _get(who, invitation_id, to_manage=False)
    uses = db.session.scalars(select(InvitationUse).options(selectinload(InvitationUse.user))
                              .filter_by(invitation_id=invitation.id)
                              .order_by(InvitationUse.used_at, InvitationUse.id)).all()
    return [{"id": u.id, "used_at": u.used_at, "user": u.user} for u in uses]
