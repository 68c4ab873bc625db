"""Authenticator validate stage: the pending user gives a code from their authenticator app or
one of their recovery codes (portal.mfa.verify_second_factor: each code works once, failures
are audited there).

Wrong codes are limited per (account, address) (RATELIMIT_MFA_VERIFY). A person with no factor
the stage accepts meets `not_configured_action`: skip the stage, or deny. authentik's third
action, "configure" (run a setup stage inline), is not implemented: a blueprint that asks for
it imports with a note and the person is denied, never let through.
"""

from __future__ import annotations

from wtforms import fields, validators
from wtforms.form import BaseForm

from ... import mfa, ratelimits
from ..context import note
from .base import Deny, Next, Retry, StageType
from .options import CHOICE, CHOICES, Option

CODE_KEY = "code"
# authentik's device classes the portal has: TOTP apps, and static tokens (recovery codes).
DEVICE_CLASSES = (("totp", "Authenticator app (TOTP)"), ("static", "Recovery codes"))
METHODS = {"totp": mfa.TOTP, "static": mfa.RECOVERY_CODE}
NOT_CONFIGURED_ACTIONS = (("skip", "Skip this stage"), ("deny", "Deny access"))


class AuthenticatorValidateStage(StageType):
    type_name = "authenticator_validate"
    label = "Authenticator validate"
    description = "Asks for a code from the person's authenticator app or a recovery code."
    model = "authentik_stages_authenticator_validate.authenticatorvalidatestage"
    interactive = True
    template = "flow/authenticator_validate.html"
    needs_stored_session = False  # showing the page only reads; its POST stores the session
    declared_options = (
        Option("device_classes", CHOICES, "Accepted codes", default=["totp", "static"],
               choices=DEVICE_CLASSES,
               unknown_choice="is not a kind of authenticator the portal has; ignored"),
        Option("not_configured_action", CHOICE, "When the person has no authenticator",
               default="skip", choices=NOT_CONFIGURED_ACTIONS,
               unknown_choice="is kept, but the portal does not run setup stages inline; the "
                              "person is denied"),
    )

    @property
    def methods(self) -> tuple[str, ...]:
        classes = self.options.get("device_classes") or [v for v, _ in DEVICE_CLASSES]
        return tuple(METHODS[c] for c in classes if c in METHODS)

    def enter(self, ctx):
        user = ctx.pending_user()
        if user is None:
            return Deny("Nobody to check", "This flow has no account to check a code for.", 400)
        if self.methods and mfa.has_second_factor(user, self.methods):
            return None
        if self.options.get("not_configured_action", "skip") == "skip":
            return Next()
        return Deny("An authenticator is required",
                    "This needs a code from an authenticator app, and your account has none set "
                    "up. Ask an administrator for help.", 403)

    def form(self, ctx, formdata=None):
        label = "Code from your authenticator app" if mfa.TOTP in self.methods else \
            "Recovery code"
        form = BaseForm([(CODE_KEY, fields.StringField(
            label, validators=[validators.InputRequired("Type the code."),
                               validators.Length(max=64)],
            render_kw={"autocomplete": "one-time-code", "autofocus": True}))])
        form.process(formdata)
        return form

    def submit(self, ctx, form):
        if not form.validate():
            return Retry({k: list(v) for k, v in form.errors.items()})
        user = ctx.pending_user()
        if not ratelimits.second_factor_allowed(user.id, ctx.client_ip):
            return Retry({CODE_KEY: ["Too many wrong codes. Wait a few minutes, then try "
                                     "again."]})
        method = mfa.verify_second_factor(user, form[CODE_KEY].data, ip=ctx.client_ip,
                                          methods=self.methods)
        if method is None:
            ratelimits.second_factor_failed(user.id, ctx.client_ip)
            return Retry({CODE_KEY: ["That code is not right, or was used already."]})
        note(ctx.session, "mfa_method", method)  # which factor this sign-in used
        if method == mfa.RECOVERY_CODE:
            left = mfa.remaining_recovery_codes(user)
            ctx.notify(f"You used a recovery code; {left} left. Make new ones on your account "
                       "page if you are running out.", "warning")
        return Next()
