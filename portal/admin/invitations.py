"""Invitations: list, create (to people or as a link), bulk, and the lifecycle actions.

The privilege ceiling (portal.access.ceiling) holds on every action: an admin may create, see the
link of, resend, extend, edit, duplicate, revoke or delete an invitation only if every group it
can lead to (its own, and every group its flow can assign) is one they may give. Lists still show
the other invitations of their namespaces, read-only: no link, no actions, and the reason.

The same views serve the instance's invitations (/instance/invitations/, portal/admin/instance.py)
when acting on no tenant; their links go through scoped_url so each stays on its own side.
"""

from datetime import UTC, timedelta

from flask import (
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
)
from flask_login import current_user
from sqlalchemy import select

from ..access import (
    INVITATIONS_MANAGE,
    assignable_groups,
    check_invitation,
    givable_roles,
    invitation_refusals,
)
from ..extensions import db
from ..invitations import bulk, scope, service
from ..mail import mail_configured
from ..mail import retry as retry_email
from ..mail.web import deliver_after_response
from ..models import (
    Flow,
    Group,
    Invitation,
    OutboxMessage,
    OutboxStatus,
    utcnow,
)
from ..numbers import db_int
from ..pagination import KeysetPage, keyset_arg, paginate
from ..tenants import grants_summary, in_instance, tenant_get
from ..urls import base_url
from . import bp, client_ip, grants, permission_required, scoped_url
from .forms import (
    INVITATION_KINDS,
    MODE_OF_KIND,
    BulkActionForm,
    BulkInvitationForm,
    ConfirmForm,
    ExpiryForm,
    InvitationForm,
    NewInvitationForm,
    bulk_size_problem,
)

PER_PAGE = 25
manage = permission_required(INVITATIONS_MANAGE)


def _flow_allowed(flow: Flow) -> bool:
    return scope.flow_allowed(grants(), flow)


def _enrollment_flows():
    return scope.enrollment_flows(grants())


def _invitable_flows():
    """The enrollment flows offered on the forms: those whose every group the admin may give."""
    return scope.invitable_flows(grants())


def _check_posted_flow() -> None:
    """A hand-made POST naming a flow the form did not offer is refused with the group named
    (CeilingError: 403), not only as "not a valid choice"."""
    flow_id = request.form.get("flow", type=db_int) if request.method == "POST" else None
    scope.check_flow_choice(grants(), tenant_get(Flow, flow_id) if flow_id else None)


def _allowed_flow_ids() -> set[int] | None:
    """None when the admin may manage invitations of every flow."""
    return scope.allowed_flow_ids(grants())


def _get_invitation(invitation_id: int, *, to_manage: bool = True) -> Invitation:
    """The invitation if its flow is in the admin's namespaces (else 404); `to_manage`: and if
    every group it can lead to is within their ceiling (else 403 naming the group)."""
    try:
        return scope.get_invitation(grants(), invitation_id, to_manage=to_manage)
    except scope.InvitationNotFound:
        abort(404)


def _groups_by_id(ids) -> list[Group]:
    return scope.groups_by_id(grants(), ids)


def _superuser_choice(form) -> bool:
    """The "instance superadmin" box: offered only on the instance's pages (elsewhere the field
    is removed, so a forged one is ignored); whether it may be ticked is the service's rule
    (access.check_instance_invitation)."""
    if not in_instance():
        del form.grants_superuser
        return False
    return bool(form.grants_superuser.data)


def _default_expiry():
    expire_after: timedelta = current_app.config["INVITATION_EXPIRE_AFTER_DELTA"]
    return (utcnow() + expire_after).replace(tzinfo=None, second=0, microsecond=0)


def _queued_ids(invitations) -> list[int]:
    ids = [i.id for i in invitations]
    return list(db.session.scalars(select(OutboxMessage.id).where(
        OutboxMessage.invitation_id.in_(ids), OutboxMessage.status == OutboxStatus.QUEUED)))


@bp.route("/invitations/")
@manage
def invitations():
    args = request.args
    filters = _list_filters()
    flow_ids = _allowed_flow_ids()
    query = service.list_query(**filters, flow_ids=flow_ids)
    if filters["sort"] in service.KEYSET_SORTS:  # newest or oldest first: keyset pages
        page = KeysetPage(query, service.KEYSET_SORTS[filters["sort"]], per_page=PER_PAGE,
                          after=keyset_arg("after"), before=keyset_arg("before"),
                          descending=filters["sort"].startswith("-"))
    else:
        page = paginate(query, per_page=PER_PAGE)
    creators = db.session.scalars(service.creators_query(flow_ids)).all()
    return render_template(
        "admin/invitations/list.html", page=page, status_of=service.status_of, filters=filters,
        flows=_enrollment_flows(), creators=creators, statuses=list(service.InvitationStatus),
        emails=service.latest_emails([i.id for i in page.items]), bulk_form=BulkActionForm(),
        args={k: v for k, v in args.items() if k not in ("page", "after", "before")},
        locked=invitation_refusals(grants(), page.items),
    )


def _list_filters() -> dict:
    args = request.args
    return {
        "search": args.get("q", "").strip(),
        "status": args.get("status", ""),
        "flow_id": args.get("flow", type=db_int),
        "creator_id": args.get("creator", type=db_int),
        "sort": args.get("sort", "-created"),
    }


@bp.route("/invitations/links.csv")
@manage
def invitations_links_csv():
    """The pending invitations of the current filter with their links, to send by hand (or
    with another mailer) when the portal has no mail server."""
    query = service.list_query(**{**_list_filters(), "status": "pending"},
                               flow_ids=_allowed_flow_ids())
    root = base_url()
    admin = grants()

    def rows():
        invitations = db.session.scalars(query)
        if not admin.superuser:  # links beyond the admin's ceiling are never exported
            invitations = list(invitations)
            hidden = invitation_refusals(admin, invitations)
            invitations = [i for i in invitations if i.id not in hidden]
        yield from service.links_csv(invitations, root)

    stamp = utcnow().strftime("%Y%m%d-%H%M%S")
    return Response(stream_with_context(rows()), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="invitation-links-{stamp}.csv"'})


MODE_SESSION_KEY = "invitation_create_mode"  # the admin's last choice of tab


def _opening_kind() -> str:
    """The tab the create form opens on: the one clicked (?mode=, remembered), else the shareable
    link when no mail server is configured (authentik's steps then end in a link on the first
    try), else the admin's last choice, else specific people."""
    asked = {mode: kind for kind, mode in MODE_OF_KIND.items()}.get(request.args.get("mode", ""))
    if asked:
        session[MODE_SESSION_KEY] = asked
        return asked
    if not mail_configured():
        return "link"
    remembered = session.get(MODE_SESSION_KEY)
    return remembered if remembered in INVITATION_KINDS else "recipients"


@bp.route("/invitations/new", methods=["GET", "POST"])
@manage
def invitation_create():
    groups = assignable_groups(grants())
    form = NewInvitationForm(flows=_invitable_flows(), groups=groups, roles=givable_roles(grants()),
                             grants=grants())
    superuser = _superuser_choice(form)
    _check_posted_flow()
    source = request.args.get("from", type=db_int)
    if request.method == "GET":
        form.expires.data = _default_expiry()
        form.kind.data = _opening_kind()
        if source:  # "duplicate": the same settings, a new link
            _fill_from(form, _get_invitation(source), keep_kind="mode" in request.args)
    if form.validate_on_submit():
        session[MODE_SESSION_KEY] = form.kind.data
        options = dict(
            flow=tenant_get(Flow, form.flow.data),
            expires_at=form.expires_at,
            attributes=form.attributes.parsed,
            message=(form.message.data or "").strip(),
            groups=_groups_by_id(form.groups.data),
            roles=form.direct_roles,
            grants_superuser=superuser,
        )
        # The one ceiling, direct roles included (a forged role id is refused, not dropped).
        check_invitation(grants(), flow=options["flow"], groups=options["groups"], roles=options["roles"])
        options["grants"] = grants()
        if form.kind.data == "recipients":
            created, emailed = service.invite_recipients(
                form.to.addresses, name=(form.name.data or "").strip(), cc=form.cc.addresses,
                bcc=form.bcc.addresses, base_url=base_url(), created_by=current_user,
                ip=client_ip(), **options,
            )
            deliver_after_response(_queued_ids(created))
            _flash_created(len(created), emailed)
            _note_existing_accounts(i.email for i in created)
            if len(created) > 1:
                return redirect(scoped_url("invitations", sort="-created"))
            invitation = created[0]
        else:
            invitation = service.create_invitation(
                name=(form.name.data or "").strip(), single_use=form.single_use.data,
                max_uses=form.max_uses.data, allowed_domains=form.allowed_domains.domains,
                created_by=current_user, ip=client_ip(), **options,
            )
            flash("Invitation created. Copy the link below and share it with the people you invite.",
                  "success")
        return redirect(scoped_url("invitation_detail", invitation_id=invitation.id))
    tabs = [(kind, label, scoped_url("invitation_create", mode=MODE_OF_KIND[kind],
                                  **({"from": source} if source else {})))
            for kind, label in INVITATION_KINDS.items()]
    return render_template("admin/invitations/form.html", form=form, invitation=None, tabs=tabs,
                           mail_configured=mail_configured())


def _fill_from(form: NewInvitationForm, source: Invitation, *, keep_kind: bool = False) -> None:
    """The source's settings; its kind too, unless the admin just chose a tab."""
    form.name.data = source.name
    form.flow.data = source.flow_id
    form.attributes.data = service.attributes_as_yaml(source.attributes)
    form.message.data = source.message
    form.groups.data = [g.id for g in source.groups]
    # Its direct roles, each with its namespaces (posting goes through the ceiling again).
    form.fill_direct_roles([(d.role, d.namespaces) for d in source.direct_roles])
    form.single_use.data = source.single_use
    form.max_uses.data = source.max_uses
    if form.grants_superuser:  # on the instance's pages only
        form.grants_superuser.data = source.grants_superuser
    form.allowed_domains.data = ", ".join(source.allowed_domains or [])
    if source.email:
        form.to.data = source.email
        form.cc.data = ", ".join(source.cc or [])
        form.bcc.data = ", ".join(source.bcc or [])
    if not keep_kind:
        form.kind.data = "recipients" if source.email else "link"


NAMED_EXISTING = 5  # past this many, the note gives a count and the first few addresses


def _note_existing_accounts(addresses) -> None:
    """Tell the admin which invited addresses already belong to a member of this tenant (or,
    to a superadmin, to an account elsewhere): they will be asked to join, not to sign up. Who
    learns what is service.account_notes' rule: to anyone else the page is the same whoever
    the address belongs to."""
    notes = service.account_notes(addresses, grants())
    members = [a for a, note in notes.items() if note == service.MEMBER]
    others = [a for a, note in notes.items() if note == service.ACCOUNT]
    for found, single, several in (
            (members, "is already a member of this tenant", "are already members of this tenant"),
            (others, "already has an account", "already have an account")):
        if len(found) == 1:
            flash(f"{found[0]} {single}; they will be asked to join.", "info")
        elif found:
            shown = ", ".join(found[:NAMED_EXISTING]) + (", …" if len(found) > NAMED_EXISTING else "")
            flash(f"{len(found)} of these addresses {several}; they will be asked to join: {shown}.",
                  "info")


def _flash_created(count: int, emailed: bool) -> None:
    what = "1 invitation" if count == 1 else f"{count} invitations"
    if emailed:
        flash(f"{what} created; the email is on its way (see its delivery status below).", "success")
    else:
        flash(f"{what} created. No mail server is configured (MAIL_SERVER is empty), so no email "
              "was sent: send each link yourself (“Export pending links” downloads them all).",
              "warning")


@bp.route("/invitations/<int:invitation_id>")
@manage
def invitation_detail(invitation_id: int):
    invitation = _get_invitation(invitation_id, to_manage=False)
    locked = invitation_refusals(grants(), [invitation]).get(invitation.id)
    status = service.status_of(invitation)
    link = (
        service.invitation_link(invitation, base_url())
        if status is service.InvitationStatus.VALID and locked is None else None
    )
    return render_template(
        "admin/invitations/detail.html", invitation=invitation, status=status, link=link,
        action_form=ConfirmForm(), mail_configured=mail_configured(),
        locked=str(locked) if locked else None, grants_summary=grants_summary(invitation),
    )


@bp.route("/invitations/<int:invitation_id>/edit", methods=["GET", "POST"])
@manage
def invitation_edit(invitation_id: int):
    invitation = _get_invitation(invitation_id)  # its present grants within the ceiling (else 403)
    form = InvitationForm(flows=_invitable_flows(), groups=assignable_groups(grants()),
                          roles=givable_roles(grants()), grants=grants(),
                          original_expiry=invitation.expires_at)
    _check_posted_flow()
    if invitation.email:  # recipient-bound: one use, one address
        del form.single_use, form.max_uses, form.allowed_domains
    if request.method == "GET":
        form.name.data = invitation.name
        form.flow.data = invitation.flow_id
        form.attributes.data = service.attributes_as_yaml(invitation.attributes)
        form.message.data = invitation.message
        form.groups.data = [g.id for g in invitation.groups]
        form.fill_direct_roles([(d.role, d.namespaces) for d in invitation.direct_roles])
        if not invitation.email:
            form.single_use.data = invitation.single_use
            form.max_uses.data = invitation.max_uses
            form.allowed_domains.data = ", ".join(invitation.allowed_domains or [])
        if invitation.expires_at:
            form.expires.data = invitation.expires_at.replace(tzinfo=None, second=0, microsecond=0)
    if form.validate_on_submit():
        chosen = _groups_by_id(form.groups.data)
        changes = dict(
            name=(form.name.data or "").strip(),
            flow=tenant_get(Flow, form.flow.data),
            expires_at=form.expires_at,
            attributes=form.attributes.parsed,
            message=(form.message.data or "").strip(),
            groups=scope.kept_groups(grants(), invitation, chosen),
            roles=form.direct_roles,
        )
        # The new grants too (the old ones were weighed when the invitation was loaded).
        check_invitation(grants(), flow=changes["flow"], groups=changes["groups"],
                         roles=changes["roles"])
        if not invitation.email:
            changes.update(single_use=form.single_use.data, max_uses=form.max_uses.data,
                           allowed_domains=form.allowed_domains.domains)
        service.update_invitation(invitation, actor=current_user, ip=client_ip(), **changes)
        flash("Invitation saved.", "success")
        return redirect(scoped_url("invitation_detail", invitation_id=invitation.id))
    return render_template("admin/invitations/form.html", form=form, invitation=invitation,
                           mail_configured=mail_configured())


@bp.route("/invitations/<int:invitation_id>/delete", methods=["GET", "POST"])
@manage
def invitation_delete(invitation_id: int):
    invitation = _get_invitation(invitation_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        name = invitation.name
        service.delete_invitation(invitation, actor=current_user, ip=client_ip())
        flash(f"Invitation “{name}” deleted; its link no longer works.", "success")
        return redirect(scoped_url("invitations"))
    return render_template("admin/confirm_delete.html", form=form, what="invitation",
                           name=invitation.name,
                           consequence="Its link stops working at once. Accounts created with "
                                       "it are kept.",
                           cancel=scoped_url("invitation_detail", invitation_id=invitation.id))


@bp.route("/invitations/<int:invitation_id>/revoke", methods=["POST"])
@manage
def invitation_revoke(invitation_id: int):
    invitation = _get_invitation(invitation_id)
    if ConfirmForm().validate_on_submit():
        service.revoke_many([invitation], actor=current_user, ip=client_ip())
        flash("Invitation revoked; its link no longer works.", "success")
    return redirect(scoped_url("invitation_detail", invitation_id=invitation.id))


@bp.route("/invitations/<int:invitation_id>/<any(resend, extend):action>", methods=["GET", "POST"])
@manage
def invitation_expiry_action(invitation_id: int, action: str):
    """Resend (new link, new expiry) and extend (same link, later expiry) ask the same question."""
    invitation = _get_invitation(invitation_id)
    form = ExpiryForm()
    if request.method == "GET":
        form.expires.data = _default_expiry()
    if form.validate_on_submit():
        try:
            if action == "resend":
                emailed = service.resend(invitation, expires_at=form.expires_at,
                                         base_url=base_url(), actor=current_user, ip=client_ip())
                deliver_after_response(_queued_ids([invitation]))
                flash("A new link was made; the old one no longer works. "
                      + ("It is being emailed." if emailed else "Copy it below and send it."),
                      "success")
            else:
                service.extend(invitation, expires_at=form.expires_at, actor=current_user,
                               ip=client_ip())
                flash("The invitation's expiry was extended; the link is unchanged.", "success")
            return redirect(scoped_url("invitation_detail", invitation_id=invitation.id))
        except service.ActionRefused as exc:
            form.expires.errors = [str(exc)]
    return render_template("admin/invitations/expiry.html", form=form, invitation=invitation,
                           action=action)


@bp.route("/invitations/<int:invitation_id>/emails/<int:message_id>/retry", methods=["POST"])
@manage
def invitation_email_retry(invitation_id: int, message_id: int):
    invitation = _get_invitation(invitation_id)
    message = db.get_or_404(OutboxMessage, message_id)
    if message.invitation_id == invitation.id and ConfirmForm().validate_on_submit():
        if retry_email(message):
            db.session.commit()
            deliver_after_response([message.id])
            flash("The email is queued again.", "success")
        else:
            db.session.rollback()
            flash("Nothing was retried: only an email that failed can be sent again, and this "
                  f"one is {message.status.lower()}.", "info")
    return redirect(scoped_url("invitation_detail", invitation_id=invitation.id))


@bp.route("/invitations/bulk-action", methods=["POST"])
@manage
def invitations_bulk_action():
    form = BulkActionForm()
    if not form.validate_on_submit() or not form.ids.data:
        flash("Select at least one invitation.", "error")
        return redirect(scoped_url("invitations"))
    chosen, locked = scope.actionable(grants(), form.ids.data)
    if locked:  # read-only to this admin (the privilege ceiling): left as they are
        flash(f"{len(locked)} invitation(s) left unchanged: {next(iter(locked.values()))}",
              "warning")
    if form.action.data == "delete":
        count = service.delete_many(chosen, actor=current_user, ip=client_ip())
        flash(f"{count} invitation(s) deleted.", "success")
    else:
        count = service.revoke_many(chosen, actor=current_user, ip=client_ip())
        flash(f"{count} invitation(s) revoked.", "success")
    return redirect(scoped_url("invitations"))


@bp.route("/invitations/bulk", methods=["GET", "POST"])
@manage
def invitations_bulk():
    groups = assignable_groups(grants())
    form = BulkInvitationForm(flows=_invitable_flows(), groups=groups, roles=givable_roles(grants()),
                              grants=grants())
    _superuser_choice(form)
    _check_posted_flow()
    rows, error = None, None
    if request.method == "GET":
        form.expires.data = _default_expiry()
    elif form.validate_on_submit():
        upload = form.upload.data
        if upload and upload.filename:
            raw = upload.read(current_app.config["BULK_INVITE_MAX_BYTES"] + 1)
            error = bulk_size_problem(len(raw), "The file")
            if error is None:
                try:
                    form.text.data = raw.decode("utf-8-sig")
                except UnicodeDecodeError as exc:
                    line = raw[:exc.start].count(b"\n") + 1
                    error = f"Line {line}: the file is not UTF-8 text; save it as CSV (UTF-8)."
        if error is None:
            try:
                rows = bulk.check(bulk.parse(form.text.data), flow_id=form.flow.data,
                                  assignable=groups, viewer=grants())
            except bulk.UploadRejected as exc:
                error = str(exc)
        if error is None and not rows:
            error = "Paste at least one address, or upload a CSV file."
        if error is None and form.confirm.data and any(r.ok for r in rows):
            return _bulk_create(form, rows)
    if error and _wants_json():
        return jsonify(error=error), 400
    return render_template("admin/invitations/bulk.html", form=form, rows=rows, error=error,
                           valid=sum(1 for r in rows or [] if r.ok), mail_configured=mail_configured())


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


def _bulk_create(form: BulkInvitationForm, rows: list[bulk.Row]):
    """Create the valid rows; the page's script sends them in slices (start, count) to show
    progress, a plain form post sends them all at once.

    Each slice counts only its own rows' problems: the whole list is checked again on every
    request, so by then the rows earlier slices created are "already invited". The script adds
    the slices' counts up (created_so_far, skipped_so_far) for the summary after the last one."""
    start = request.form.get("start", 0, type=db_int)
    count = request.form.get("count", type=db_int)
    part = rows[start:start + count] if count else rows
    emailed = mail_configured()
    options = dict(flow=tenant_get(Flow, form.flow.data), groups=_groups_by_id(form.groups.data),
                   roles=form.direct_roles)
    # The one ceiling, as on the create form (each row's own groups are checked by bulk.check).
    check_invitation(grants(), **options)
    options.update(grants=grants(), grants_superuser=bool(getattr(form, "grants_superuser", None)
                                                          and form.grants_superuser.data))
    created = bulk.create(
        part, base_url=base_url(), email=emailed, created_by=current_user, ip=client_ip(),
        expires_at=form.expires.data.replace(tzinfo=UTC), message=(form.message.data or "").strip(),
        **options,
    )
    deliver_after_response(_queued_ids(created))
    _note_existing_accounts(i.email for i in created)
    skipped = sum(1 for r in part if not r.ok)
    last = not count or start + count >= len(rows)
    if last:
        _flash_created(len(created) + request.form.get("created_so_far", 0, type=db_int), emailed)
        skipped_in_all = skipped + request.form.get("skipped_so_far", 0, type=db_int)
        if skipped_in_all:
            flash(f"{skipped_in_all} row(s) with a problem were skipped.", "info")
    if _wants_json():
        return jsonify(created=len(created), skipped=skipped,
                       processed=min(len(rows), start + len(part)), total=len(rows))
    return redirect(scoped_url("invitations", sort="-created"))
