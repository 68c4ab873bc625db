"""The account page's API tokens: make one (its secret shown once), revoke one."""

from __future__ import annotations

from datetime import timedelta

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Length

from .. import apitokens
from ..access import grants_for
from ..admin.forms import MultiCheckboxField
from ..auth.forms import ConfirmActionForm
from ..models import utcnow
from .routes import bp

LIFETIMES = {"7": "7 days", "30": "30 days", "90": "90 days", "365": "1 year"}


class ApiTokenForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=apitokens.MAX_NAME)],
                       description="What uses it, such as “HR sync script”.")
    scopes = MultiCheckboxField("Permissions", validators=[DataRequired("Choose at least one.")],
                                description="Only permissions you hold; the token never does "
                                            "more than you can.")
    lifetime = SelectField("Expires after", choices=LIFETIMES, default="90")
    submit = SubmitField("Create token")

    def __init__(self, *args, scopes=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.scopes.choices = [(s, apitokens.SCOPES[s]) for s in scopes]


def token_form(user) -> ApiTokenForm:
    return ApiTokenForm(scopes=apitokens.grantable_scopes(grants_for(user)))


@bp.route("/account/api-tokens", methods=["POST"])
@login_required
def create_api_token():
    user = current_user._get_current_object()
    form = token_form(user)
    if form.validate_on_submit():
        try:
            token, secret = apitokens.issue(
                user, name=form.name.data, scopes=form.scopes.data,
                expires_at=utcnow() + timedelta(days=int(form.lifetime.data)),
                ip=request.remote_addr)
        except apitokens.TokenError as exc:
            field = exc.field if exc.field in ("name", "scopes") else "lifetime"
            getattr(form, field).errors.append(str(exc))
        else:  # shown in this response only: never stored in clear, never in the session
            return render_template("account/api_token_created.html", token=token, secret=secret)
    from .routes import index

    return index(token_form_with_errors=form), 422


@bp.route("/account/api-tokens/<int:token_id>/revoke", methods=["POST"])
@login_required
def revoke_api_token(token_id: int):
    user = current_user._get_current_object()
    token = apitokens.find_own(user, token_id)
    if token is not None and ConfirmActionForm().validate_on_submit() and \
            apitokens.revoke(token, actor=user, ip=request.remote_addr):
        flash(f"The API token “{token.name}” is revoked; it no longer works.", "success")
    return redirect(url_for("account.index", _anchor="api-tokens"))
