"""Authenticator TOTP setup stage: scan a QR code (or type the secret), confirm with a first
code, then see the new recovery codes once.

The person is the flow's pending user (`ctx.pending_user()`): the signed-in visitor of a
stage-configuration flow, or the account an enrollment flow has just written. The crypto and
the rules live in portal.mfa; this stage is the page around them.

Two pages, one stage: *setup* (QR code, secret, code field) and, once the device is confirmed,
*codes*. The codes are generated when that page is shown, so they exist only in that one
response: the flow session keeps the device's id and whether the codes were shown, never a
secret or a code. A reload of the codes page does not show them again (new ones can be made on
the account page).
"""

from __future__ import annotations

from sqlalchemy import select
from wtforms import fields, validators
from wtforms.form import BaseForm

from ... import mfa
from ...extensions import db
from ...models import Flow, FlowDesignation, Stage, TOTPDevice
from ..context import note, noted
from .base import Deny, Next, Retry, StageType
from .options import CHOICE, FLOW, TEXT, Option

CODE_KEY = "code"
DIGITS = (("6", "6 digits"), ("8", "8 digits"))


class AuthenticatorTOTPStage(StageType):
    type_name = "authenticator_totp"
    label = "Authenticator setup (TOTP)"
    description = ("Sets up an authenticator app with a QR code and a first code, then shows "
                   "recovery codes once.")
    model = "authentik_stages_authenticator_totp.authenticatortotpstage"
    interactive = True
    template = "flow/authenticator_totp.html"
    declared_options = (
        Option("digits", CHOICE, "Code length", default="6", choices=DIGITS,
               help="How many digits the app shows."),
        Option("friendly_name", TEXT, "Device name", default="", max_length=100,
               help="The name the device gets in the person's account. Empty: "
                    f"“{mfa.totp.DEFAULT_DEVICE_NAME}”."),
        Option("configure_flow", FLOW, "Configuration flow",
               help="The stage-configuration flow the account page's “Set up an "
                    "authenticator” runs (authentik's configure_flow)."),
    )

    # What the template shows, set by form(): "setup" | "codes" | "codes_seen".
    phase = "setup"
    enrolment: mfa.Enrolment | None = None
    recovery_codes: tuple[str, ...] | list[str] = ()

    # -- the flow session's notes (ids and flags only) -------------------------------------

    def _key(self, ctx, what: str) -> str:
        return f"totp.{ctx.binding.id if ctx.binding else self.stage.id}.{what}"

    def _device(self, ctx, user) -> TOTPDevice | None:
        device_id = noted(ctx.session, self._key(ctx, "device"))
        device = db.session.get(TOTPDevice, device_id) if device_id else None
        return device if device is not None and device.user_id == user.id else None

    # -- the stage ---------------------------------------------------------------------------

    def enter(self, ctx):
        if ctx.pending_user() is None:
            return Deny("Nobody to set up", "Sign in first, then open this page again.", 403)
        return None

    def form(self, ctx, formdata=None):
        user = ctx.pending_user()
        device = self._device(ctx, user)
        if device is not None and device.confirmed:
            self.phase = "codes"
            if formdata is None:  # showing the page: the codes exist in this response only
                if noted(ctx.session, self._key(ctx, "codes_shown")):
                    self.phase = "codes_seen"
                else:
                    self.recovery_codes = mfa.generate_recovery_codes(user, ip=ctx.client_ip)
                    note(ctx.session, self._key(ctx, "codes_shown"), True)
                    db.session.commit()
            form = BaseForm([])
            form.process(formdata)
            return form
        if device is None:
            self.enrolment = mfa.begin_totp(
                user, str(self.options.get("friendly_name") or "").strip()
                or mfa.totp.DEFAULT_DEVICE_NAME,
                digits=int(self.options.get("digits") or 6), ip=ctx.client_ip)
            note(ctx.session, self._key(ctx, "device"), self.enrolment.device.id)
            db.session.commit()
        else:
            self.enrolment = mfa.enrolment(device)
        form = BaseForm([(CODE_KEY, fields.StringField(
            "Code from the app", validators=[validators.InputRequired("Type the code.")],
            render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"}))])
        form.process(formdata)
        return form

    def submit(self, ctx, form):
        if self.phase != "setup":  # "I have saved them": done
            return Next()
        if not form.validate():
            return Retry({k: list(v) for k, v in form.errors.items()})
        if not mfa.confirm_totp(self.enrolment.device, form[CODE_KEY].data, ip=ctx.client_ip):
            return Retry({CODE_KEY: ["That code is not right. Check the app's clock and type "
                                     "the code it shows now."]})
        ctx.notify("Your authenticator is set up.", "success")
        return Retry({})  # stay here: the next page of this stage shows the recovery codes


def setup_flow() -> Flow | None:
    """The flow the account page offers for setting up an authenticator: the configure_flow of
    a TOTP setup stage, when it is a stage-configuration flow (the seeded stage names
    default-authenticator-totp-setup)."""
    option = AuthenticatorTOTPStage.option("configure_flow")
    stages = db.session.scalars(select(Stage).filter_by(type=AuthenticatorTOTPStage.type_name)
                                .order_by(Stage.id))
    for stage in stages:
        flow = option.kind.row(option.kind.read(stage, option))
        if flow is not None and flow.designation == FlowDesignation.STAGE_CONFIGURATION:
            return flow
    return None
