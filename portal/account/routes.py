"""The signed-in user's own pages: their account, their password, their sessions."""
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from .. import mfa
from ..auth import service as accounts
from ..auth.forms import (
    ChangePasswordForm,
    ConfirmActionForm,
    LogoutForm,
    SignOutEverywhereForm,
)
from ..auth.routes import home_for
from ..auth.sessions import sign_in, sign_out
from ..extensions import db
from ..flows.defaults import unenrollment_flow
from ..flows.stages.authenticator_totp import setup_flow
from ..models import TOTPDevice
from ..sources import service as sso

bp = Blueprint("account", __name__)


@bp.route("/")
def home():
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    return redirect(home_for(current_user))


@bp.route("/account/")
@login_required
def index():
    user = current_user._get_current_object()
    return render_template("account/index.html", logout_form=LogoutForm(),
                           everywhere_form=SignOutEverywhereForm(), action_form=ConfirmActionForm(),
                           devices=mfa.list_devices(user, confirmed_only=True),
                           recovery_left=mfa.remaining_recovery_codes(user),
                           totp_setup=setup_flow(), unenrollment=unenrollment_flow(),
                           **_identities(user))


def _identities(user) -> dict:
    """Linked SSO identities, and the sources the person may link next."""
    linked = [c for c in sso.connections_of(user) if c.subject]
    taken = {c.source_id for c in linked}
    return {"identities": [(c, sso.can_unlink(user, c)) for c in linked],
            "link_sources": [s for s in sso.sources_shown() if s.id not in taken]}


@bp.route("/account/identities/<int:connection_id>/unlink", methods=["POST"])
@login_required
def unlink_identity(connection_id: int):
    """Unlink an SSO identity (refused when it is the last way to sign in)."""
    if ConfirmActionForm().validate_on_submit():
        try:
            name = sso.unlink(current_user._get_current_object(), connection_id,
                              ip=request.remote_addr)
        except sso.SourceError as error:
            flash(error.message, "error")
        else:
            flash(f"Your {name} identity is unlinked.", "success")
    return redirect(url_for("account.index"))


@bp.route("/account/authenticators/<int:device_id>/remove", methods=["POST"])
@login_required
def remove_authenticator(device_id: int):
    user = current_user._get_current_object()
    device = db.session.get(TOTPDevice, device_id)
    if device is None or device.user_id != user.id:
        abort(404)
    if ConfirmActionForm().validate_on_submit():
        mfa.remove_totp(device, actor=user, ip=request.remote_addr)
        flash(f"The authenticator “{device.name}” is removed.", "success")
    return redirect(url_for("account.index"))


@bp.route("/account/recovery-codes", methods=["POST"])
@login_required
def new_recovery_codes():
    """New codes replace the old ones and are shown in this response only (never stored in
    clear, never redirected through the session)."""
    user = current_user._get_current_object()
    if not ConfirmActionForm().validate_on_submit() or not mfa.user_has_mfa(user):
        return redirect(url_for("account.index"))
    codes = mfa.generate_recovery_codes(user, ip=request.remote_addr)
    return render_template("account/recovery_codes.html", codes=codes)


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
