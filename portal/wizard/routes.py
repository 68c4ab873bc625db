import functools

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    has_request_context,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from sqlalchemy import bindparam, event, select
from sqlalchemy.orm import Session as OrmSession
from werkzeug.datastructures import CombinedMultiDict

from .. import ratelimits, tenants
from ..access import grants_for
from ..auth.routes import home_for, safe_next
from ..auth.sessions import sign_in, sign_out
from ..errors import render_error
from ..extensions import db
from ..flows import executor
from ..flows.context import note
from ..flows.executor import FlowExecutor, Step
from ..flows.planner import ConditionError, bindings_of, definition_options
from ..flows.prompts import DISPLAY_TYPES
from ..flows.stages import STAGE_TYPES, ActionRequest, ActionResult
from ..flows.stages.email import EmailStage
from ..flows.stages.identification import FIELD as IDENTIFIER_FIELD
from ..flows.stages.identification import pending_identifier
from ..invitations.service import usable_invitation_digest
from ..mail.web import deliver_on_close
from ..models import Flow, FlowDesignation, FlowStageBinding, Invitation, User
from ..security.headers import no_referrer
from ..urls import base_url

bp = Blueprint("wizard", __name__)

SESSION_KEY = "flows"  # slug -> flow session key; the state itself stays in the database
# slug -> digest of the invitation link just opened: resolved again on the first page, so a link
# resent (or revoked) in between no longer lets this browser in.
INVITED_KEY = "invited"


def _remember(slug: str, key: str | None, *, under: str = SESSION_KEY) -> None:
    keys = dict(session.get(under) or {})
    if key is None:
        keys.pop(slug, None)
    else:
        keys[slug] = key
    session[under] = keys


def start_over(slug: str) -> None:
    """This browser's next visit to the flow begins a new flow session (the unfinished one
    expires on its own)."""
    _remember(slug, None)


def _key(slug: str) -> str | None:
    return (session.get(SESSION_KEY) or {}).get(slug)


def _take_invited(slug: str) -> str | None:
    token_digest = (session.get(INVITED_KEY) or {}).get(slug)
    if token_digest is not None:
        _remember(slug, None, under=INVITED_KEY)
    return token_digest if isinstance(token_digest, str) else None


def _visitor():
    return current_user if current_user.is_authenticated else None


def _start(flow: Flow, token: str | None, token_digest: str | None = None):
    """A new flow session, in memory until the flow really starts (a stage that writes, a page's
    form taken, or the first page of a link already checked: see executor.start), so visits
    without a good link write no flow session, and a good one writes it once, with its first
    stages already passed."""
    flow_session, key = executor.start(
        flow, token, current_user=_visitor(), token_digest=token_digest,
        lifetime=current_app.config["FLOW_SESSION_LIFETIME_DELTA"], store=False,
    )
    target = safe_next(request.args.get("next"))
    if target:  # where to go once the flow is done (a sign-in's ?next=)
        note(flow_session, "next", target)
    wizard = _executor(flow_session)
    _remember(flow.slug, None)  # an ended session's key would make the first POST "ended"
    wizard.on_store = lambda: _remember(flow.slug, key)
    return wizard


def stored_flow_session(flow: Flow):
    """This browser's flow session for `flow`, started (and stored) now if it has none: a
    stage's trip elsewhere (SSO) needs the session to exist before it leaves."""
    flow_session = executor.load(_key(flow.slug), flow)
    if flow_session is None:
        wizard = _start(flow, None, _take_invited(flow.slug))
        step = wizard.step()
        if step.kind != "page":
            return None
        wizard.store()
        flow_session = wizard.session
    return flow_session


def current_flow_session(flow: Flow):
    """This browser's open flow session for `flow`, or None (nothing is started)."""
    return executor.load(_key(flow.slug), flow)


def owns_flow_session(flow_session) -> bool:
    """The flow session is the one this browser's cookie names (and still open)."""
    return executor.load(_key(flow_session.flow.slug), flow_session.flow) is flow_session


def continue_with(slug: str, key: str) -> None:
    """This browser continues the flow `slug` with the flow session `key` (made elsewhere)."""
    _remember(slug, key)


def _executor(flow_session) -> FlowExecutor:
    visitor = _visitor()
    wizard = FlowExecutor(flow_session, current_user=visitor, superuser=grants_for(visitor).superuser,
                          base_url=base_url(), client_ip=request.remote_addr)
    g.flow_ctx = wizard.ctx
    return wizard


@bp.before_request
def _keep_loaded_rows():
    """A wizard request commits at the points the flow engine owns (a stage's side effects, the
    flow session's progress), and each commit would otherwise expire every loaded row: the flow,
    its bindings, stages and prompts, the invitation and the session would be read again after
    each one. They are not changed by the commit, so this request keeps them as loaded (the
    guarded UPDATEs, not these copies, decide whether an invitation may be used; a rollback
    still expires everything). The session ends with the request.

    Only noted here: the ORM session is told when it begins its first transaction (below), so
    a request that never uses it (an invitation link) does not create one (about a sixth of the
    link's time)."""
    g.keep_loaded_rows = True


@event.listens_for(OrmSession, "after_begin")
def _keep_rows_in_wizard(session, _transaction, _connection) -> None:
    if has_request_context() and g.get("keep_loaded_rows"):
        session.expire_on_commit = False


@bp.url_value_preprocessor
def _refuse_nul(_endpoint, values):
    """No slug or token contains NUL, and PostgreSQL refuses it in text: a 404 before any
    lookup (or rate-limit key) sees it."""
    if any("\x00" in str(v) for v in (values or {}).values()) or any(
            "\x00" in v for key in ("itoken", "token") for v in request.args.getlist(key)):
        abort(404)


@bp.after_request
def _deliver_queued_mail(response):
    """Emails a stage queued (verification links) go out once the page has been sent."""
    ctx = g.get("flow_ctx")
    return deliver_on_close(response, ctx.outbox_ids) if ctx is not None else response


MISCONFIGURED = (
    503, "This sign-up page is misconfigured",
    "The administrator needs to fix one of its conditions. Try again later.",
)


def _get_flow(slug: str) -> Flow | None:
    """The flow with its whole definition, in one query, once per request: every page of the
    wizard needs it, and so do the rate limits' rules, which run first (kept on `g`: the ORM
    session's identity map holds its objects only weakly, and would load them again)."""
    flows = g.setdefault("wizard_flows", {})
    if slug not in flows:
        flows[slug] = db.session.scalars(_flow_by_slug(), {"slug": slug}).unique().first()
    return flows[slug]


@functools.cache
def _flow_by_slug():
    """Built once (with its cache key): building the joined statement cost more per request
    than reading its rows."""
    return select(Flow).where(Flow.slug == bindparam("slug")).options(*definition_options())


def _binding_of(flow: Flow | None, binding_id: int | None) -> FlowStageBinding | None:
    """One of this flow's bindings, from its loaded definition (a binding of another flow is
    none of this flow's: the executor ignores a form for it)."""
    if flow is None or not binding_id:
        return None
    return next((binding for binding in bindings_of(flow) if binding.id == binding_id), None)


def _sign_in_attempt() -> bool:
    """This POST is for an identification or password stage: the sign-in limits count it.
    Asked by the limits on every request, so a GET, or a POST naming no binding, asks nothing."""
    if request.method != "POST":
        return False
    stage_type = _posted_stage_type()
    return bool(stage_type and stage_type.sign_in_attempt)


def _posted_stage_type():
    """The stage type of the binding this POST names, if it is one of this flow's."""
    binding = _binding_of(_get_flow((request.view_args or {}).get("slug", "")),
                          request.form.get("binding", type=int))
    return STAGE_TYPES.get(binding.stage.type) if binding is not None else None


def _pending_identifier() -> str:
    """Whose password this POST checks: on an identification page, the identifier it sends;
    on any other page, the one the visitor's flow noted there (a password page's POST could
    carry a `login` of its own, a new one each time, and draw on other accounts' budgets)."""
    stage_type = _posted_stage_type()
    if stage_type is not None and stage_type.names_the_account:
        return request.form.get(IDENTIFIER_FIELD, "")
    flow = _get_flow((request.view_args or {}).get("slug", ""))
    flow_session = _flow_session(flow) if flow is not None else None
    return pending_identifier(flow_session) if flow_session is not None else ""


def _flow_session(flow: Flow):
    """This browser's flow session for the flow, loaded once per request: the sign-in limits'
    key asks for it before the view does."""
    sessions = g.setdefault("wizard_sessions", {})
    key = _key(flow.slug)
    if key not in sessions:
        sessions[key] = executor.load(key, flow)
    return sessions[key]


@bp.route("/if/flow/<slug>/", methods=["GET", "POST"])
@no_referrer
@ratelimits.invitation_lookup
@ratelimits.wizard_submit(exempt_when=_sign_in_attempt)
@ratelimits.sign_in(identifier=_pending_identifier, applies=_sign_in_attempt)
def flow(slug: str):
    try:
        return _flow(slug)
    except ConditionError:
        current_app.logger.exception("flow %s has an invalid binding condition", slug)
        db.session.rollback()
        return render_error(*MISCONFIGURED)


def _flow(slug: str):
    token = request.args.get("itoken")
    if request.method == "GET" and token is not None and _visitor() is None:
        token_digest = usable_invitation_digest(slug, token)
        if token_digest is not None:
            # A good link only reads: it notes the link's digest in the signed cookie and takes
            # the token out of the address bar. The wizard's first page starts the flow session
            # (and its invitation stage checks again), so link scanners and previews write nothing.
            _remember(slug, None)
            _remember(slug, token_digest, under=INVITED_KEY)
            return redirect(url_for("wizard.flow", slug=slug))
    flow = _get_flow(slug)
    if flow is None:
        return render_error(404, "This sign-up page does not exist",
                            "Check the link, or ask the person who invited you for a new one.")
    if request.method == "GET" and token is not None:
        wizard = _start(flow, token)  # a bad link (or a signed-in visitor): the stages say why
        step = wizard.step()
        if step.kind in ("page", "accept"):
            # Take the token out of the address bar; the server-side session carries it on.
            wizard.store()
            return redirect(url_for("wizard.flow", slug=slug))
        return _render(flow, step)

    flow_session = _flow_session(flow)
    if flow_session is None:
        if request.method == "POST" and _key(slug) is not None:
            return render_error(
                400, "Your sign-up session has ended",
                "It expired or was finished in another window. Open your invitation link again "
                "to start over.",
            )
        invited = _take_invited(slug)
        wizard = _start(flow, None, invited)
        if request.method == "POST":
            # The first POST of a page whose GET stored nothing: the flow starts now, and runs
            # up to that page again before taking the form (a refusal is shown instead).
            first = wizard.step()
            if first.kind != "page":
                return _render(flow, first)
        elif invited is not None:
            # The first page of a link checked on landing: the flow session is written now,
            # once, at this page (the link's digest has left the cookie).
            step = wizard.step()
            if step.kind == "page":
                wizard.store()
            return _render(flow, step)
    else:
        wizard = _executor(flow_session)

    if request.method == "POST":
        formdata = CombinedMultiDict([request.files, request.form]) if request.files else request.form
        step = wizard.submit(request.form.get("binding", type=int), formdata)
        if step.kind == "page" and not step.errors:
            return redirect(url_for("wizard.flow", slug=slug))  # post/redirect/get
        return _render(flow, step)
    return _render(flow, wizard.step())


@bp.route("/if/flow/<slug>/existing-account", methods=["POST"])
def existing_account(slug: str):
    """"I already have an account": sign in through the authentication flow, then come back to
    this invitation to accept it. The flow session (and so the invitation) is handed to the
    sign-in's `next` under a new key, because signing in starts a fresh cookie."""
    flow = _get_flow(slug)
    flow_session = executor.load(_key(slug), flow) if flow is not None else None
    if flow_session is None:
        return render_error(400, "Your sign-up session has ended",
                            "Open your invitation link again to start over.")
    if not _executor(flow_session).offers_sign_in():
        return redirect(url_for("wizard.flow", slug=slug))
    key = executor.hand_off(flow_session)
    _remember(slug, None)
    return redirect(url_for("auth.login", next=url_for("wizard.resume", slug=slug, key=key)))


@bp.route("/if/flow/<slug>/resume/<key>")
@no_referrer
def resume(slug: str, key: str):
    """Back from signing in: this browser takes the flow session over under a key of its own
    (the one in the address stops working), and the flow shows where it stands: for a signed-in
    person with an invitation, the acceptance."""
    flow = _get_flow(slug)
    flow_session = executor.load(key, flow) if flow is not None and len(key) <= 200 else None
    if flow_session is None:
        return render_error(410, "This link has expired or was already used",
                            "Open your invitation link again.")
    _remember(slug, executor.hand_off(flow_session))
    return redirect(url_for("wizard.flow", slug=slug))


def _limited_action() -> bool:
    """The stage action of this request counts against the "send again" limit."""
    view_args = request.view_args or {}
    binding = _binding_of(_get_flow(view_args.get("slug", "")), view_args.get("binding_id"))
    stage_type = STAGE_TYPES.get(binding.stage.type) if binding is not None else None
    action = stage_type.action((request.view_args or {}).get("action", "")) if stage_type else None
    return bool(action and action.rate_limited)


@bp.route("/if/flow/<slug>/stage/<int:binding_id>/<action>", methods=["GET", "POST"])
@no_referrer
@ratelimits.email_resend(exempt_when=lambda: not _limited_action())
def stage_action(slug: str, binding_id: int, action: str):
    """One route for every stage type's own actions (the email stage's "send again" and its
    link): the binding names the stage, its type declares the action, the action answers."""
    flow = _get_flow(slug)
    binding = _binding_of(flow, binding_id)
    if binding is None:
        return render_error(404, "This sign-up page does not exist",
                            "Check the link, or ask the person who invited you for a new one.")
    return _run_action(flow, binding, action)


def _run_action(flow: Flow, binding: FlowStageBinding, name: str):
    stage_type = STAGE_TYPES.get(binding.stage.type)
    action = stage_type.action(name) if stage_type else None
    if action is None or request.method not in action.methods:
        abort(404 if action is None else 405)
    flow_session = executor.load(_key(flow.slug), flow)
    wizard = _executor(flow_session) if flow_session is not None else None
    stage = None
    if wizard is not None:
        refused = wizard.refusal()  # a copied cookie whose sign-in ended acts on nothing
        if refused is not None:
            return _render(flow, refused)
        stage = wizard.current_stage()
        if wizard.ctx.binding is None or wizard.ctx.binding.id != binding.id:
            stage = None
    if action.needs_session:
        if flow_session is None:
            return render_error(400, "Your sign-up session has ended",
                                "Open your invitation link again to start over.")
        if stage is None:  # the visitor has moved on (another tab): back to where they are
            return redirect(url_for("wizard.flow", slug=flow.slug))
    if stage is None:
        stage = stage_type(binding.stage)
    result = action.handler(stage, ActionRequest(
        method=request.method, args=request.args.to_dict(), form=request.form.to_dict(),
        ctx=wizard.ctx if wizard is not None else None))
    return _render_action(flow, result)


def _render_action(flow: Flow, result: ActionResult):
    if result.resume_key:
        _remember(flow.slug, result.resume_key)
    for category, text in result.notices:
        flash(text, category)
    if result.kind == "back":
        return redirect(url_for("wizard.flow", slug=flow.slug))
    if result.kind == "error":
        return render_error(result.status, result.title, result.message)
    return render_template(result.template, flow=flow, **result.values), result.status


# Addresses of earlier releases, kept because emails already sent contain them: served by the
# same actions, with the binding found from the visitor's flow session or the flow's email stage.


@bp.route("/if/flow/<slug>/email/resend", methods=["POST"])
@ratelimits.email_resend()
def email_resend(slug: str):
    flow = _get_flow(slug)
    flow_session = executor.load(_key(slug), flow) if flow else None
    if flow_session is None:
        return render_error(400, "Your sign-up session has ended",
                            "Open your invitation link again to start over.")
    wizard = _executor(flow_session)
    if not isinstance(wizard.current_stage(), EmailStage):
        return redirect(url_for("wizard.flow", slug=slug))
    return _run_action(flow, wizard.ctx.binding, "resend")


@bp.route("/if/flow/<slug>/verify-email", methods=["GET", "POST"])
@no_referrer
def verify_email(slug: str):
    flow = _get_flow(slug)
    binding = next((b for b in flow.bindings if b.stage.type == EmailStage.type_name),
                   None) if flow else None
    if binding is None:
        return render_error(404, "This sign-up page does not exist",
                            "Check the link, or ask the person who invited you for a new one.")
    return _run_action(flow, binding, "verify")


def _render(flow: Flow, step: Step):
    if step.sign_out:  # first: signing out clears the cookie, notices included
        sign_out(None)
    for category, text in step.notices:  # the stages' notices, shown on this page or the next
        flash(text, category)
    if step.kind == "denied":
        return render_template("flow/denied.html", flow=flow, step=step), step.status
    if step.kind == "accept":
        return render_template("flow/accept.html", flow=flow, step=step,
                               invitation=step.invitation, user=db.session.get(User, step.user_id))
    if step.kind in ("accepted", "declined"):
        return redirect(url_for("account.index"))
    if step.kind == "done":
        if step.login_user_id is not None:
            user = db.session.get(User, step.login_user_id)
            if user is not None and user.is_active:
                sign_in(user, step.login_lifetime)
                target = safe_next(step.next_path)
                if flow.designation == FlowDesignation.AUTHENTICATION:
                    return redirect(target or home_for(user))
                flash(f"Welcome, {user.display_name}! Your account is ready.", "success")
                return redirect(target or url_for("account.index"))
        if flow.designation == FlowDesignation.STAGE_CONFIGURATION and _visitor() is not None:
            return redirect(url_for("account.index"))  # set up from the account page: back there
        if step.sign_out:  # the account is gone (user delete): nothing left to show here
            return redirect(url_for("auth.login"))
        user = db.session.get(User, step.user_id) if step.user_id else None
        return render_template("flow/done.html", flow=flow, step=step, user=user)
    invitation = db.session.get(Invitation, step.invitation_id) if step.invitation_id else None
    return render_template(step.stage.template, flow=flow, step=step, form=step.form,
                           stage=step.stage, display_types=DISPLAY_TYPES,
                           sso_sources=_sso_offered(step),
                           offered_sources=_offered_here(flow),
                           invitation_grants=(tenants.grants_summary(invitation)
                                              if invitation else None))


def _offered_here(flow: Flow):
    """For a page's own SSO buttons (identification, source stage): the listed sources this
    flow may use (portal.sources.service.offered_in, in the tenant the flow session acts in)."""
    from ..sources.service import flow_session_tenant_id, only_offered

    ctx = g.get("flow_ctx")
    tenant_id = flow_session_tenant_id(ctx.session) if ctx is not None else flow.tenant_id
    return lambda sources: only_offered(sources, tenant_id)


def _sso_offered(step: Step) -> list:
    """An invitation's first page offers "Continue with <source>" (until one was used)."""
    from ..sources.service import flow_session_tenant_id, sources_shown, sso_identity

    ctx = g.get("flow_ctx")
    if ctx is None or step.number != 1 or ctx.session.invitation_id is None or \
            sso_identity(ctx.session):
        return []
    return sources_shown(tenant=flow_session_tenant_id(ctx.session))  # the invitation's tenant
