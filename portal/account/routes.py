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
from ..invitations import service as invitations
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
def index(token_form_with_errors=None):
    from .. import apitokens
    from .tokens import token_form

    user = current_user._get_current_object()
    return render_template("account/index.html", logout_form=LogoutForm(),
                           api_tokens=apitokens.tokens_of(user), token_state=apitokens.state_of,
                           token_form=token_form_with_errors or token_form(user),
                           everywhere_form=SignOutEverywhereForm(), action_form=ConfirmActionForm(),
                           devices=mfa.list_devices(user, confirmed_only=True),
                           recovery_left=mfa.remaining_recovery_codes(user),
                           totp_setup=setup_flow(), unenrollment=unenrollment_flow(),
                           pending=invitations.pending_for(user),
                           email_verified=accounts.verified_email(user) is not None,
                           **_identities(user))


def _identities(user) -> dict:
    """Linked SSO identities, and the sources the person may link next."""
    linked = [c for c in sso.connections_of(user) if c.subject]
    taken = {c.source_id for c in linked}
    return {"identities": [(c, sso.can_unlink(user, c)) for c in linked],
            "link_sources": [s for s in sso.linkable_sources(user) if s.id not in taken]}


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


@bp.route("/account/invitations/<int:invitation_id>/<any(accept, decline):decision>",
          methods=["POST"])
@login_required
def answer_invitation(invitation_id: int, decision: str):
    """Accept or decline one of the invitations listed on the account page (only those: the
    ones addressed to this account's verified address and still open)."""
    user = current_user._get_current_object()
    invitation = invitations.pending_invitation(user, invitation_id)
    if invitation is None:
        abort(404)
    if not ConfirmActionForm().validate_on_submit():
        return redirect(url_for("account.index"))
    if decision == "decline":
        invitations.decline(user, invitation, ip=request.remote_addr)
        flash(f"You declined the invitation “{invitation.name}”. Nothing was changed.", "info")
        return redirect(url_for("account.index"))
    result = invitations.grant_access(user, invitation, ip=request.remote_addr)
    if isinstance(result, invitations.Refusal):
        flash(f"{result.title}. {result.message}", "error")
    else:
        joined = ", ".join(g.name for g in result.groups)
        flash(f"You accepted the invitation “{invitation.name}”."
              + (f" You are now in {joined}." if joined else ""), "success")
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


from . import tokens  # noqa: E402,F401  (its routes attach to bp)
