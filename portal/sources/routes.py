"""The SSO pages: start a round trip, the provider's callback, confirm a link by email.

Thin: each view reads the request and calls portal.sources.service. The redirect URI a
provider must know is BASE_URL + /source/oidc/<slug>/callback. The state is kept in this
browser's signed session cookie *and* (as a digest) in the attempt row, so a callback is
accepted only in the browser that began it, and only once.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user
from flask_wtf import FlaskForm

from .. import ratelimits
from ..errors import render_error
from ..extensions import db
from ..models import Flow, FlowSession, User
from ..security.headers import allow_form_action
from ..urls import base_url
from ..wizard import routes as wizard
from . import service
from .service import SourceError

bp = Blueprint("sources", __name__, url_prefix="/source/oidc")
STATE_KEY = "sso_state"


@bp.app_template_global()
def sso_button_for(source) -> str:
    """Called by the "… with <source>" button: the page's CSP lets the form's redirect reach
    the provider (its issuer's origin, and its authorization endpoint's when known)."""
    for url in (source.issuer, service.oidc.cached_authorization_endpoint(source.issuer)):
        parts = urlsplit(url or "")
        if parts.scheme in ("http", "https") and parts.netloc:
            allow_form_action(f"{parts.scheme}://{parts.netloc}")
    return ""


def redirect_uri(source) -> str:
    return base_url().rstrip("/") + url_for("sources.callback", slug=source.slug)


def _fail(error: SourceError, source=None):
    """The clear page for a refusal, and its audit event (nothing else was written)."""
    service.record_failure(error.reason, source=source, ip=request.remote_addr,
                           user=current_user if current_user.is_authenticated else None)
    return render_error(error.status, error.title, error.message)


@bp.route("/<slug>/start", methods=["POST"])
@ratelimits.wizard_submit()  # each start writes an attempt: counted like a flow page's POST
def start(slug: str):
    """A "Sign in with …" / "Continue with …" / "Link …" button: off to the provider."""
    source = service.by_slug(slug)
    if source is None or not source.enabled or not FlaskForm().validate_on_submit():
        return render_error(404, "This sign-in option does not exist",
                            "Go back and choose another way to sign in.")
    try:
        if request.form.get("purpose") == "link":
            if not current_user.is_authenticated:
                return redirect(url_for("auth.login"))
            url, state = service.begin(source, redirect_uri=redirect_uri(source),
                                       purpose="link", user=current_user)
        else:
            flow = db.session.query(Flow).filter_by(slug=request.form.get("flow", "")).first()
            flow_session = wizard.stored_flow_session(flow) if flow is not None else None
            if flow_session is None:
                return render_error(400, "Your sign-in session has ended",
                                    "Open the page again to start over.")
            url, state = service.begin(source, redirect_uri=redirect_uri(source),
                                       purpose="flow", flow_session=flow_session,
                                       binding_id=request.form.get("binding", type=int))
    except SourceError as error:
        return _fail(error, source)
    session[STATE_KEY] = state
    return redirect(url)


@bp.route("/<slug>/callback")
def callback(slug: str):
    """The provider sends the browser back here with `code` and `state` (or an `error`)."""
    source = service.by_slug(slug)
    if source is None:
        return render_error(404, "This sign-in option does not exist",
                            "Go back and choose another way to sign in.")
    try:
        attempt = service.take(request.args.get("state"), session.pop(STATE_KEY, None))
        if attempt.source_id != source.id:
            raise SourceError("state_mismatch", "This sign-in link is not valid here",
                              "Start the sign-in again.")
        if request.args.get("error"):
            reason = "access_denied" if request.args["error"] == "access_denied" else \
                "provider_error"
            raise service.provider_error(service.oidc.ProviderError(reason))
        identity = service.finish(attempt, code=request.args.get("code"),
                                  redirect_uri=redirect_uri(source))
        if attempt.purpose == "link":
            if not current_user.is_authenticated or current_user.id != attempt.user_id:
                raise SourceError("not_signed_in", "Sign in first",
                                  "Linking an identity needs the account to be signed in.", 403)
            service.link(current_user._get_current_object(), source, identity,
                         ip=request.remote_addr)
            return redirect(url_for("account.index"))
        flow_session = db.session.get(FlowSession, attempt.flow_session_id or 0)
        if flow_session is None or not wizard.owns_flow_session(flow_session):
            raise SourceError("flow_ended", "Your sign-in session has ended",
                              "It expired or was finished in another window. Start again.")
        outcome = service.apply_to_flow(flow_session, source, identity, ip=request.remote_addr)
    except SourceError as error:
        return _fail(error, source)
    if outcome.kind == "confirm":
        return redirect(url_for("sources.confirm", slug=source.slug, flow=outcome.flow_slug))
    if outcome.kind == "accepted":
        return _signed_in_after_accepting(outcome)
    if outcome.kind == "enroll":
        wizard.continue_with(outcome.flow_slug, outcome.session_key)
    return redirect(url_for("wizard.flow", slug=outcome.flow_slug))


def _signed_in_after_accepting(outcome):
    """An existing account accepted the invitation through SSO: signed in, on its account."""
    from ..auth.sessions import sign_in

    user = db.session.get(User, outcome.user_id)
    wizard.start_over(outcome.flow_slug)
    if user is not None and user.is_active:
        sign_in(user)
    flash("The invitation is accepted: its access is added to your account.", "success")
    return redirect(url_for("account.index"))


@bp.route("/<slug>/confirm", methods=["GET", "POST"])
def confirm(slug: str):
    """An account has the provider's verified address: the person links it, or not."""
    source = service.by_slug(slug)
    flow = db.session.query(Flow).filter_by(slug=request.args.get("flow", "")).first()
    flow_session = wizard.current_flow_session(flow) if flow is not None and source else None
    pending = service.noted(flow_session, service.CONFIRM_NOTE) if flow_session else None
    if not pending:
        return render_error(400, "Nothing to confirm", "Start the sign-in again.")
    form = FlaskForm()
    if request.method == "POST" and form.validate_on_submit():
        if request.form.get("answer") != "link":
            service.note(flow_session, service.CONFIRM_NOTE, None)
            db.session.commit()
            wizard.start_over(flow.slug)
            return redirect(url_for("wizard.flow", slug=flow.slug))
        try:
            outcome = service.confirm_link(flow_session, ip=request.remote_addr)
        except SourceError as error:
            return _fail(error, source)
        if outcome.kind == "accepted":
            return _signed_in_after_accepting(outcome)
        return redirect(url_for("wizard.flow", slug=outcome.flow_slug))
    return render_template("sources/confirm.html", source=source, form=form,
                           email=pending.get("email", ""), flow=flow)
