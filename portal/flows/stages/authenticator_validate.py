"""Authenticator validate stage: the pending user gives a code from their authenticator app or
one of their recovery codes (portal.mfa.verify_second_factor: each code works once, failures
are audited there).

Wrong codes are limited per (account, address) (RATELIMIT_MFA_VERIFY). A person with no factor
the stage accepts meets `not_configured_action`: skip the stage, deny, or configure: as in
authentik, the validation counts as passed and the first of `configuration_stages` (a setup
stage, such as TOTP setup) runs in its place, its pages shown on this binding until it is done.
The flow session notes that setup is under way, so the codes page that follows the setup's
confirmation (when the person does have a factor) is still the setup's.
"""

from __future__ import annotations

from wtforms import fields, validators
from wtforms.form import BaseForm

from ... import mfa, ratelimits
from ..context import note, noted
from . import registry
from .base import Deny, Next, Retry, StageType
from .options import CHOICE, CHOICES, STAGES, Option

CODE_KEY = "code"
# authentik's device classes the portal has: TOTP apps, and static tokens (recovery codes).
DEVICE_CLASSES = (("totp", "Authenticator app (TOTP)"), ("static", "Recovery codes"))
METHODS = {"totp": mfa.TOTP, "static": mfa.RECOVERY_CODE}
NOT_CONFIGURED_ACTIONS = (("skip", "Skip this stage"), ("deny", "Deny access"),
                          ("configure", "Set one up (the configuration stage)"))
SETUP_TYPES = ("authenticator_totp",)  # stage types a person can set a factor up with


def _setup_stages(needs):
    return [(s.id, s.name) for s in needs.stages() if s.type in SETUP_TYPES]


class AuthenticatorValidateStage(StageType):
    type_name = "authenticator_validate"
    label = "Authenticator validate"
    description = "Asks for a code from the person's authenticator app or a recovery code."
    model = "authentik_stages_authenticator_validate.authenticatorvalidatestage"
    interactive = True
    declared_options = (
        Option("device_classes", CHOICES, "Accepted codes", default=["totp", "static"],
               choices=DEVICE_CLASSES,
               unknown_choice="is not a kind of authenticator the portal has; ignored"),
        Option("not_configured_action", CHOICE, "When the person has no authenticator",
               default="skip", choices=NOT_CONFIGURED_ACTIONS),
        Option("configuration_stages", STAGES, "Configuration stages", choices=_setup_stages,
               help="With “Set one up”: the first of these runs in this stage's place."),
    )

    def __init__(self, stage) -> None:
        super().__init__(stage)
        self.setup: StageType | None = None  # the configuration stage, while it runs here
        # Only setting a factor up writes before a POST (a device in progress).
        self.needs_stored_session = self.options.get("not_configured_action") == "configure"

    @property
    def template(self) -> str:
        return self.setup.template if self.setup is not None else "flow/authenticator_validate.html"

    # What the configuration stage's template reads, while it runs here.
    @property
    def phase(self):
        return self.setup.phase

    @property
    def enrolment(self):
        return self.setup.enrolment

    @property
    def recovery_codes(self):
        return self.setup.recovery_codes

    def _configuring_key(self, ctx) -> str:
        return f"validate.{ctx.binding.id if ctx.binding else self.stage.id}.configuring"

    def _configuration_stage(self) -> StageType | None:
        option = self.option("configuration_stages")
        for row in option.kind.rows(self.options.get("configuration_stages")):
            if row.type in SETUP_TYPES and row.type in registry.STAGE_TYPES:
                return registry.stage_type_for(row)
        return None

    @property
    def methods(self) -> tuple[str, ...]:
        classes = self.options.get("device_classes") or [v for v, _ in DEVICE_CLASSES]
        return tuple(METHODS[c] for c in classes if c in METHODS)

    def enter(self, ctx):
        user = ctx.pending_user()
        if user is None:
            return Deny("Nobody to check", "This flow has no account to check a code for.", 400)
        if noted(ctx.session, self._configuring_key(ctx)):
            return self._configure(ctx)
        if self.methods and mfa.has_second_factor(user, self.methods):
            return None
        action = self.options.get("not_configured_action", "skip")
        if action == "skip":
            return Next()
        if action == "configure":
            return self._configure(ctx)
        return Deny("An authenticator is required",
                    "This needs a code from an authenticator app, and your account has none set "
                    "up. Ask an administrator for help.", 403)

    def _configure(self, ctx):
        self.setup = self._configuration_stage()
        if self.setup is None:
            return Deny("An authenticator is required",
                        "This needs a code from an authenticator app, and there is no way to set "
                        "one up here. Ask an administrator for help.", 403)
        if not noted(ctx.session, self._configuring_key(ctx)):
            note(ctx.session, self._configuring_key(ctx), True)
        return self.setup.enter(ctx)

    def form(self, ctx, formdata=None):
        if self.setup is not None:
            return self.setup.form(ctx, formdata)
        label = "Code from your authenticator app" if mfa.TOTP in self.methods else \
            "Recovery code"
        form = BaseForm([(CODE_KEY, fields.StringField(
            label, validators=[validators.InputRequired("Type the code."),
                               validators.Length(max=64)],
            render_kw={"autocomplete": "one-time-code", "autofocus": True}))])
        form.process(formdata)
        return form

    def submit(self, ctx, form):
        if self.setup is not None:  # setting a factor up counts as passing (authentik's rule)
            return self.setup.submit(ctx, form)
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
