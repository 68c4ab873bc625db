from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select

from ..auth.routes import sign_in
from ..errors import render_error
from ..extensions import db
from ..flows import executor
from ..flows.executor import FlowExecutor, Step
from ..flows.prompts import DISPLAY_TYPES
from ..models import Flow, User

bp = Blueprint("wizard", __name__)

SESSION_KEY = "flows"  # slug -> flow session key; the state itself stays in the database


def _remember(slug: str, key: str) -> None:
    keys = dict(session.get(SESSION_KEY) or {})
    keys[slug] = key
    session[SESSION_KEY] = keys


def _key(slug: str) -> str | None:
    return (session.get(SESSION_KEY) or {}).get(slug)


def _visitor():
    return current_user if current_user.is_authenticated else None


def _start(flow: Flow, token: str | None):
    flow_session, key = executor.start(
        flow, token, current_user=_visitor(),
        lifetime=current_app.config["FLOW_SESSION_LIFETIME_DELTA"],
    )
    _remember(flow.slug, key)
    return _executor(flow_session)


def _executor(flow_session) -> FlowExecutor:
    wizard = FlowExecutor(flow_session, current_user=_visitor())
    wizard.ctx.extras["ip"] = request.remote_addr  # for the audit log; the engine knows no HTTP
    return wizard


@bp.route("/if/flow/<slug>/", methods=["GET", "POST"])
def flow(slug: str):
    flow = db.session.scalar(select(Flow).filter_by(slug=slug))
    if flow is None:
        return render_error(404, "This sign-up page does not exist",
                            "Check the link, or ask the person who invited you for a new one.")
    token = request.args.get("itoken")
    if request.method == "GET" and token is not None:
        step = _start(flow, token).step()
        if step.kind == "page":
            # Take the token out of the address bar; the server-side session carries it on.
            return redirect(url_for("wizard.flow", slug=slug))
        return _render(flow, step)

    flow_session = executor.load(_key(slug), flow)
    if flow_session is None:
        if request.method == "POST":
            return render_error(
                400, "Your sign-up session has ended",
                "It expired or was finished in another window. Open your invitation link again "
                "to start over.",
            )
        wizard = _start(flow, None)
    else:
        wizard = _executor(flow_session)

    if request.method == "POST":
        step = wizard.submit(request.form.get("binding", type=int), request.form)
        if step.kind == "page" and not step.errors:
            return redirect(url_for("wizard.flow", slug=slug))  # post/redirect/get
        return _render(flow, step)
    return _render(flow, wizard.step())


def _render(flow: Flow, step: Step):
    if step.kind == "denied":
        return render_template("flow/denied.html", flow=flow, step=step), step.status
    if step.kind == "done":
        if step.login_user_id is not None:
            user = db.session.get(User, step.login_user_id)
            if user is not None and user.is_active:
                sign_in(user)
                flash(f"Welcome, {user.display_name}! Your account is ready.", "success")
                return redirect(url_for("account.index"))
        return render_template("flow/done.html", flow=flow, step=step)
    return render_template(step.stage.template, flow=flow, step=step, form=step.form,
                           stage=step.stage, display_types=DISPLAY_TYPES)
