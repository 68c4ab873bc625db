"""Password stage: checks the pending user's password (authentik's PasswordStage).

The pending user is the one the identification stage found (ctx.pending_user). A wrong
password, an unknown account (identification pretending it exists) and a deactivated account
fail alike, after the same argon2 work (auth.service.check_password). Failures are audited, and
limited per account and address by the sign-in rule in portal.ratelimits, which the flow route
applies to this stage's POSTs (`sign_in_attempt`); after `failed_attempts_before_cancel` wrong
passwords in one flow session the flow is cancelled and starts over.
"""

from __future__ import annotations

from wtforms import fields, validators
from wtforms.form import BaseForm

from ...audit import Action, record_event
from ...auth.service import check_password
from ..context import note, noted
from .base import Deny, Next, Retry, StageType
from .identification import pending_identifier, shown_identity
from .options import TEXT, Option

FIELD = "password"
WRONG = "The username or password is not right."
DEFAULT_ATTEMPTS = 5


def _attempts(value) -> int:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise ValueError("enter a whole number of attempts") from None
    if not 1 <= number <= 1000:
        raise ValueError("use between 1 and 1000 attempts")
    return number


class PasswordStage(StageType):
    type_name = "password"
    label = "Password"
    description = "Checks the password of the account identified before it."
    model = "authentik_stages_password.passwordstage"
    interactive = True
    template = "flow/password.html"
    needs_stored_session = False
    sign_in_attempt = True  # its failed POSTs count against the sign-in limits
    declared_options = (
        Option("failed_attempts_before_cancel", TEXT, "Wrong passwords before the flow restarts",
               default=str(DEFAULT_ATTEMPTS), max_length=4, accepts_numbers=True,
               validate=_attempts,
               help="In one sign-in; the sign-in rate limits apply across sign-ins as well."),
    )

    @property
    def attempts_allowed(self) -> int:
        try:
            return _attempts(self.options.get("failed_attempts_before_cancel", DEFAULT_ATTEMPTS))
        except ValueError:
            return DEFAULT_ATTEMPTS

    def already_done(self, ctx) -> bool:
        """The person signed in through an SSO source in this flow: no password to ask."""
        from ...sources.service import sso_identity

        identity = sso_identity(ctx.session)
        return bool(identity and identity.get("user_id") and noted(ctx.session, "authenticated"))

    def identity(self, ctx) -> str:
        return shown_identity(ctx.session)

    def field_keys(self) -> set[str]:
        return {FIELD}

    def field(self, *, autofocus: bool = True):
        """The password field (also on an identification page that checks the password)."""
        return fields.PasswordField(
            "Password", validators=[validators.InputRequired(), validators.Length(max=1000)],
            render_kw={"autocomplete": "current-password", **({"autofocus": True} if autofocus
                                                               else {})})

    def form(self, ctx, formdata=None):
        form = BaseForm([(FIELD, self.field())])
        form.process(formdata)
        return form

    def submit(self, ctx, form) -> Next | Retry | Deny:
        if not form.validate():
            return Retry({k: list(v) for k, v in form.errors.items()})
        return self.check(ctx, form[FIELD].data)

    def check(self, ctx, password: str) -> Next | Retry | Deny:
        """The pending user's password, counted and audited when wrong: this page's POST, and
        the identification page's own password field (its `password_stage`) call this."""
        user = ctx.pending_user()
        if check_password(user, password):
            note(ctx.session, "authenticated", True)
            return Next()
        failures = int(noted(ctx.session, "password_failures") or 0) + 1
        note(ctx.session, "password_failures", failures)
        record_event(Action.SIGN_IN_FAILED, ip=ctx.client_ip, object_type="user",
                     object_repr=pending_identifier(ctx.session)[:150], commit=True)
        if failures >= self.attempts_allowed:
            return Deny("Sign-in cancelled",
                        "The password was wrong too many times. Start again to sign in.", 403)
        return Retry({FIELD: [WRONG]})
