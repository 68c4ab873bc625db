"""The signed-in user's own pages: their account, their password, their sessions."""
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..auth import service as accounts
from ..auth.forms import ChangePasswordForm, LogoutForm, SignOutEverywhereForm
from ..auth.routes import home_for
from ..auth.sessions import sign_in, sign_out
from ..flows.defaults import unenrollment_flow

bp = Blueprint("account", __name__)


@bp.route("/")
def home():
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    return redirect(home_for(current_user))


@bp.route("/account/")
@login_required
def index():
    return render_template("account/index.html", logout_form=LogoutForm(),
                           everywhere_form=SignOutEverywhereForm(),
                           unenrollment=unenrollment_flow())


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    """A new password ends every other session; this one is signed in again."""
    user = current_user._get_current_object()
    form = ChangePasswordForm(user=user)
    if form.validate_on_submit():
        try:
            accounts.change_password(user, form.current_password.data, form.password.data,
                                     ip=request.remote_addr)
        except accounts.AccountError as exc:
            form.current_password.errors.append(str(exc))
        else:
            sign_in(user)
            flash("Your password is changed. Other browsers and devices are signed out.", "success")
            return redirect(url_for("account.index"))
    return render_template("account/password.html", form=form)


@bp.route("/account/sign-out-everywhere", methods=["POST"])
@login_required
def sign_out_everywhere():
    if SignOutEverywhereForm().validate_on_submit():
        user = current_user._get_current_object()
        accounts.sign_out_everywhere(user, ip=request.remote_addr)
        sign_out(None)  # the generation already moved; just drop this cookie's sign-in
        flash("You are signed out on every browser and device.", "info")
        return redirect(url_for("auth.login"))
    return redirect(url_for("account.index"))
