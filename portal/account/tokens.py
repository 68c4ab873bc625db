"""The account page's API tokens: make one (its secret shown once), revoke one."""

from __future__ import annotations

from datetime import timedelta

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Length

from .. import apitokens
from ..access import request_grants
from ..admin.forms import MultiCheckboxField
from ..auth.forms import ConfirmActionForm
from ..models import utcnow
from ..tenants import acting_tenant
from .routes import bp

LIFETIMES = {"7": "7 days", "30": "30 days", "90": "90 days", "365": "1 year"}


class ApiTokenForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=apitokens.MAX_NAME)],
                       description="What uses it, such as “HR sync script”.")
    scopes = MultiCheckboxField("Permissions", validators=[DataRequired("Choose at least one.")],
                                description="Only permissions you hold; the token never does "
                                            "more than you can.")
    tenant = SelectField("Tenant", validate_choice=False,
                         description="The one tenant the token acts in; it may carry only "
                                     "permissions you hold there.")
    lifetime = SelectField("Expires after", choices=LIFETIMES, default="90")
    submit = SubmitField("Create token")

    def __init__(self, *args, scopes=(), tenants=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.scopes.choices = [(s, apitokens.SCOPES[s]) for s in scopes]
        self.tenant.choices = [(t.slug, t.name) for t in tenants]
        self.tenant_rows = {t.slug: t for t in tenants}


def token_form(user) -> ApiTokenForm:
    """The form: the tenants where the person holds something, the current one first chosen,
    and every permission they hold in any of them (issue() checks the chosen tenant)."""
    choices = apitokens.token_tenants(user)
    held = set()
    for tenant in choices:
        held.update(apitokens.grantable_scopes(request_grants(user, tenant)))
    form = ApiTokenForm(scopes=[s for s in apitokens.SCOPES if s in held], tenants=choices)
    if not form.is_submitted():
        current = acting_tenant(user)
        form.tenant.data = current.slug if current.slug in form.tenant_rows else (
            choices[0].slug if choices else None)
    return form


def _chosen_tenant(form: ApiTokenForm, user):
    """The tenant picked (none picked: the one the person acts in); one not offered is refused."""
    if not form.tenant.data:
        return acting_tenant(user)
    if form.tenant.data not in form.tenant_rows:
        raise apitokens.TokenError("tenant", "Choose one of the tenants offered: where you hold "
                                             "a permission.")
    return form.tenant_rows[form.tenant.data]


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
                ip=request.remote_addr, tenant=_chosen_tenant(form, user))
        except apitokens.TokenError as exc:
            field = exc.field if exc.field in ("name", "scopes", "tenant") else "lifetime"
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
