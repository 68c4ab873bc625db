from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..errors import render_error
from ..models import TokenPurpose
from ..security.headers import no_referrer
from . import service
from .forms import LogoutForm, SetPasswordForm, SetupForm
from .sessions import sign_in, sign_out

bp = Blueprint("auth", __name__, url_prefix="/auth")


def safe_next(target: str | None) -> str | None:
    """Only a path on this site: no scheme, no host, no protocol-relative or backslash tricks."""
    if not target or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def home_for(user) -> str:
    from ..access import is_admin

    return url_for("admin.dashboard") if is_admin(user) else url_for("account.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The sign-in page's address: the seeded authentication flow (an admin may change it like
    any flow), with a same-site `next` carried along."""
    from ..flows.defaults import ensure_default_authentication_flow
    from ..wizard.routes import start_over

    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    flow = ensure_default_authentication_flow()
    start_over(flow.slug)  # "Sign in" begins at the first page, not where an earlier try stopped
    target = safe_next(request.args.get("next"))
    return redirect(url_for("wizard.flow", slug=flow.slug, **({"next": target} if target else {})))


@bp.route("/logout", methods=["POST"])
def logout():
    if LogoutForm().validate_on_submit():
        sign_out(current_user._get_current_object())
        flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/setup", methods=["GET", "POST"])
@no_referrer
def setup():
    """The first admin sets their own password through the one-time link printed at start."""
    token = request.args.get("token", "")
    if service.find_action_token(TokenPurpose.SETUP, token) is None or service.admin_exists():
        return render_error(
            404, "This setup link is not valid",
            "It was already used, has expired, or an admin already exists. On the server, run "
            "'flask --app wsgi setup-link' for a new link, or sign in.",
        )
    form = SetupForm()
    if form.validate_on_submit():
        problem = service.username_problem(form.username.data, form.email.data)
        if problem:
            form.username.errors.append(problem)
        else:
            try:
                user = service.complete_setup(
                    token, username=form.username.data, email=form.email.data,
                    name=form.name.data or "", password=form.password.data,
                )
            except service.AccountError as exc:
                flash(str(exc), "error")
                return redirect(url_for("auth.login"))
            sign_in(user)
            flash("Your admin account is ready.", "success")
            return redirect(url_for("admin.dashboard"))
    return render_template("auth/setup.html", form=form)


@bp.route("/set-password", methods=["GET", "POST"])
def set_password():
    """A directly created user chooses a password through their one-time link."""
    token = request.args.get("token", "")
    row = service.find_action_token(TokenPurpose.SET_PASSWORD, token)
    if row is None or row.user is None:
        return render_error(
            404, "This link is not valid",
            "It was already used or has expired. Ask an administrator to send you a new one.",
        )
    form = SetPasswordForm(user=row.user)
    if form.validate_on_submit():
        try:
            user = service.set_password(token, form.password.data, ip=request.remote_addr)
        except service.AccountError as exc:
            return render_error(404, "This link is not valid", str(exc))
        sign_in(user)
        flash("Your password is set. Welcome!", "success")
        return redirect(home_for(user))
    return render_template("auth/set_password.html", form=form, user=row.user)
