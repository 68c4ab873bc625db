"""Email verification stage (authentik's EmailStage): sends a one-time link; opening it and
choosing "Confirm my address" confirms the address and, with `activate_user_on_success`,
activates the account written earlier. Opening the link alone uses nothing up: mail scanners
and link previews open links too.

The invitee waits on a page that offers "Send again" (rate limited) and "Continue". The link's
token is an ActionToken tied to the flow session; only its digest is stored. "Send again" and the
link are this stage's actions, served by the generic stage-action route.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta

import isodate
from flask import current_app, render_template
from sqlalchemy import delete, select
from wtforms.form import BaseForm

from ...auth.service import claim_action_token, find_action_token, mark_email_verified
from ...extensions import db
from ...mail import compose, mail_configured
from ...models import ActionToken, FlowSession, TokenPurpose, User, utcnow
from ...security import tokens
from ..context import PENDING_USER, note, noted
from .base import ActionResult, Next, Retry, StageAction, StageType, Superseded
from .options import BOOL, CHOICE, EMAIL, TEXT, Option, parse_authentik_duration

log = logging.getLogger(__name__)

PURPOSE = TokenPurpose.EMAIL_VERIFICATION
DEFAULT_SUBJECT = "Confirm your email address"
DEFAULT_EXPIRY = "minutes=30"
# The templates an admin can choose; authentik's names, rendered from templates/email/.
TEMPLATES = {
    "email/account_confirmation.html": "Account confirmation",
    "email/password_reset.html": "Password reset",
}
DEFAULT_TEMPLATE = "email/account_confirmation.html"
RESEND_MIN_INTERVAL = 60  # seconds; EMAIL_RESEND_MIN_INTERVAL overrides


def parse_expiry(value) -> timedelta:
    """authentik's token_expiry: minutes as a number (older files) or "hours=1;minutes=30";
    an ISO-8601 duration such as PT30M is accepted too. ValueError when unreadable."""
    if isinstance(value, bool):
        raise ValueError("token expiry must be a duration")
    if isinstance(value, (int, float)):
        delta = timedelta(minutes=value)
    else:
        text = str(value or "").strip()
        if not text:
            raise ValueError("token expiry is empty")
        if re.fullmatch(r"\d+", text):
            delta = timedelta(minutes=int(text))
        elif text.upper().startswith("P"):
            try:
                delta = isodate.parse_duration(text.upper())
            except (isodate.ISO8601Error, ValueError):
                raise ValueError(f"{text!r} is not a duration") from None
            if not isinstance(delta, timedelta):
                raise ValueError("use days, hours or minutes, not months or years")
        else:
            delta = parse_authentik_duration(text)
    if delta <= timedelta(0) or delta > timedelta(days=365):
        raise ValueError("token expiry must be between one second and a year")
    return delta


def verify_path(slug: str, binding_id: int) -> str:
    """The link's path: the stage-action route (see portal.wizard.routes.stage_action)."""
    return f"/if/flow/{slug}/stage/{binding_id}/verify"


@dataclass
class Verification:
    """What opening a link did, for the web layer to phrase."""

    ok: bool
    flow_session: FlowSession | None = None
    activated: bool = False


def _tokens_of(session: FlowSession):
    return select(ActionToken).where(ActionToken.purpose == PURPOSE,
                                     ActionToken.flow_session_id == session.id)


# The flow session notes where the latest link went and which address opening one confirmed:
# a verification holds only for that address, so changing it afterwards needs a new link.
SENT_TO, VERIFIED = "email_sent_to", "email_verified"
WITHHELD = "email_withheld_at"  # when a link for an identifier matching no account was not sent


def account_of(session: FlowSession) -> User | None:
    """The account the link is for: the one this flow wrote, else the one a stage identified
    (a recovery flow's pending user; read from the same note as FlowContext.pending_user, never
    the signed-in visitor: a link goes to the account the flow is about)."""
    user_id = session.user_id or noted(session, PENDING_USER)
    return db.session.get(User, user_id) if type(user_id) is int else None


def for_identified(session: FlowSession) -> bool:
    """The flow asked who the person is (identification) and has written no account: the page
    must not say whether an account matched, nor show its address."""
    return session.user_id is None and noted(session, "identifier") is not None


def address_of(session: FlowSession) -> str:
    """The address to verify: the written or identified account's, or the one the invitee typed.
    "" for an identifier that matched no account."""
    user = account_of(session)
    if user is not None:
        return user.email or ""
    if for_identified(session):
        return ""
    return str((session.prompt_data or {}).get("email") or "")


def _same(a, b) -> bool:
    return bool(a) and bool(b) and str(a).strip().casefold() == str(b).strip().casefold()


def is_verified(session: FlowSession) -> bool:
    """A link was opened, and it confirmed the address the flow holds now."""
    return _same(noted(session, VERIFIED), address_of(session))


def last_sent(session: FlowSession):
    return db.session.scalar(
        select(ActionToken.created_at).where(ActionToken.purpose == PURPOSE,
                                             ActionToken.flow_session_id == session.id)
        .order_by(ActionToken.created_at.desc()).limit(1)
    )


def address_to_confirm(token: str | None) -> str | None:
    """The address an unused, unexpired link would confirm ("" when the flow noted none), or None
    for a link that no longer works. Only reads: the page that asks "Confirm my address?"."""
    row = find_action_token(PURPOSE, token)
    if row is None:
        return None
    session = db.session.get(FlowSession, row.flow_session_id) if row.flow_session_id else None
    return str(noted(session, SENT_TO) or "") if session is not None else ""


def verify(token: str | None) -> Verification:
    """Consume a link: confirm the flow's address, activate the account, move the flow on."""
    row = find_action_token(PURPOSE, token)
    if row is None or not claim_action_token(row):
        return Verification(ok=False)
    activated = False
    if row.user_id is not None and (user := db.session.get(User, row.user_id)) is not None:
        activated = not user.active
        user.active = True
    session = db.session.get(FlowSession, row.flow_session_id) if row.flow_session_id else None
    if session is not None and session.finished_at is None:
        note(session, VERIFIED, noted(session, SENT_TO))
        if is_verified(session):
            account = account_of(session)
            if account is not None:  # the account's own address is proven (see User.verified_email)
                mark_email_verified(account, noted(session, SENT_TO))
            if for_identified(session):
                # Opening the link proves the mailbox of the identified account: the person is
                # authenticated for this flow (user login then signs them in, as in authentik).
                note(session, "authenticated", True)
            _advance_past_email_stage(session)
    db.session.commit()
    return Verification(ok=True, flow_session=session, activated=activated)


def _advance_past_email_stage(session: FlowSession) -> None:
    from ...models import FlowStageBinding

    plan = session.plan or []
    if session.position < len(plan):
        binding = db.session.get(FlowStageBinding, plan[session.position])
        if binding is not None and binding.stage.type == EmailStage.type_name:
            session.position += 1


def _check_expiry(value) -> None:
    parse_expiry(value)  # its ValueError says what is wrong


LINK_GONE = ActionResult.error(410, "This link has expired or was already used",
                               "Go back to the sign-up page and choose “Send again” for a new "
                               "link.")


def _resend(stage: EmailStage, request) -> ActionResult:
    """Send the verification email again (rate limited, and no sooner than a minimum interval)."""
    return ActionResult.back(notice=("info", stage.resend(request.ctx)))


def _verify(stage: EmailStage, request) -> ActionResult:
    """The link from the email. Opening it (GET) only shows a "Confirm my address" button, as an
    invitation link only reads: mail scanners and link previews open links and must not use them
    up. The button's POST (CSRF-checked like every form) confirms the address, then continues
    the flow when it is the visitor's own."""
    token = request.args.get("token")
    if request.method == "GET":
        address = address_to_confirm(token)
        if address is None:
            return LINK_GONE
        return ActionResult.page("flow/verify_email.html", address=address)
    result = verify(token)
    if not result.ok:
        return LINK_GONE
    mine = request.ctx
    if mine is not None and result.flow_session is not None and \
            mine.session.id == result.flow_session.id:
        return ActionResult.back(notice=("success", "Your email address is confirmed."))
    if result.flow_session is not None and result.flow_session.finished_at is None and \
            for_identified(result.flow_session):
        # An existing account's flow (recovery) goes on in the browser that opened the link,
        # as authentik restores the flow there: the browser that asked loses it, so someone who
        # asks for a stranger's reset gets nothing when the stranger confirms the link.
        key = tokens.new_token()
        result.flow_session.key_digest = tokens.digest(key)
        db.session.commit()
        back = ActionResult.back(notice=("success", "Your email address is confirmed."))
        back.resume_key = key
        return back
    return ActionResult.page("flow/verified.html", result=result)


class EmailStage(StageType):
    type_name = "email"
    label = "Email verification"
    description = "Sends a one-time link; opening it confirms the address and can activate the account."
    interactive = True
    template = "flow/email.html"
    model = "authentik_stages_email.emailstage"
    declared_options = (
        Option("subject", TEXT, "Subject", default=DEFAULT_SUBJECT, required=True, max_length=255),
        Option("template", CHOICE, "Template", default=DEFAULT_TEMPLATE,
               choices=tuple(TEMPLATES.items()),
               unknown_choice="is not one of the portal's templates; the account confirmation "
                              "template is used"),
        Option("token_expiry", TEXT, "Link lifetime", default=DEFAULT_EXPIRY, required=True,
               validate=_check_expiry, accepts_numbers=True, max_length=255,
               shown_as=lambda v: f"minutes={v}" if isinstance(v, int | float) else v,
               help="authentik's format, e.g. minutes=30 or hours=1;minutes=30 (or PT30M)."),
        Option("activate_user_on_success", BOOL, "Activate the account when the link is opened",
               default=True),
        Option("use_global_settings", BOOL, "Use the portal's mail settings", default=True,
               help="The SMTP server is always the portal's (MAIL_SERVER); off, the sender below "
                    "is used."),
        Option("from_address", EMAIL, "Sender address", default="", max_length=320),
    )
    superseded = (
        Superseded(("host", "port", "username", "password", "use_tls", "use_ssl", "timeout"),
                   when="use_global_settings", equals=True,
                   reason="authentik's per-stage SMTP server, which use_global_settings: true "
                          "turns off there too; the portal's mail server (MAIL_SERVER) sends"),
    )
    actions = (
        StageAction("resend", _resend, needs_session=True, rate_limited=True),
        StageAction("verify", _verify, methods=("GET", "POST"), needs_session=False),
    )

    def recipient(self, ctx) -> str:
        return address_of(ctx.session)

    def expiry(self) -> timedelta:
        try:
            return parse_expiry(self.options.get("token_expiry", DEFAULT_EXPIRY))
        except ValueError:
            log.warning("stage %s has an unreadable token_expiry; using 30 minutes", self.stage.name)
            return timedelta(minutes=30)

    def form(self, ctx, formdata=None):
        form = BaseForm([])
        form.process(formdata)
        form.recipient = self.recipient(ctx)
        form.discreet = for_identified(ctx.session)  # never say whether the account exists
        unsent = last_sent(ctx.session) is None or (
            not form.discreet and not _same(noted(ctx.session, SENT_TO), form.recipient))
        if formdata is None and unsent and not is_verified(ctx.session):
            problem = self.send(ctx)
            if problem:  # a notice: the page is usually shown after a redirect
                ctx.notify(problem, "error")
        return form

    def submit(self, ctx, form) -> Next | Retry:
        if is_verified(ctx.session):
            return Next()
        return Retry({"email": ["We have not seen the link opened yet. Open the link in the email, "
                                "or send it again."]})

    def send(self, ctx) -> str | None:
        """Issue a fresh link (earlier ones stop working) and send it; an error text on failure."""
        to = self.recipient(ctx)
        nobody = not to and for_identified(ctx.session)
        if not to and not nobody:
            return "There is no email address to send the link to."
        if not mail_configured():
            log.error("email stage %s reached but MAIL_SERVER is not set", self.stage.name)
            return ("This portal cannot send email yet. Ask the person who invited you to "
                    "configure its mail server, then open your link again.")
        db.session.execute(delete(ActionToken).where(
            ActionToken.purpose == PURPOSE, ActionToken.flow_session_id == ctx.session.id,
            ActionToken.used_at.is_(None)))
        token = tokens.new_token()
        user_id = ctx.session.user_id if self.options.get("activate_user_on_success") else None
        db.session.add(ActionToken(purpose=PURPOSE, digest=tokens.digest(token), user_id=user_id,
                                   flow_session_id=ctx.session.id,
                                   expires_at=utcnow() + self.expiry()))
        note(ctx.session, SENT_TO, to)
        db.session.commit()
        link = f"{ctx.base_url}{verify_path(ctx.flow.slug, ctx.binding.id)}?token={token}"
        template = self.options.get("template")
        template = template if template in TEMPLATES else DEFAULT_TEMPLATE
        values = {"link": link, "flow": ctx.flow, "expires_in": self.expiry(),
                  "name": str(ctx.prompt_data.get("name") or "")}
        # Through the durable outbox, like every email: a mail server that is down delays the
        # message (the sender retries) but never loses it or fails this page.
        message = compose(
            to, str(self.options.get("subject") or DEFAULT_SUBJECT),
            render_template(template.removesuffix(".html") + ".txt", **values),
            render_template(template, **values),
            sender=None if self.options.get("use_global_settings", True)
            else self.options.get("from_address") or None,
        )
        if nobody:
            # An identifier that matched no account does the same work and gets the same page:
            # a token row (so "send again" waits the same), the message rendered and sealed,
            # and a second write and commit where the outbox row would be, so neither the
            # answer nor its time tells whether an account exists. Nothing is sent, and nobody
            # holds the token.
            note(ctx.session, WITHHELD, utcnow().isoformat())
            db.session.commit()
            return None
        db.session.add(message)
        db.session.commit()
        ctx.outbox_ids.append(message.id)
        return None

    def resend(self, ctx) -> str:
        """Send again, no sooner than the minimum interval; returns the message to show."""
        interval = timedelta(seconds=current_app.config.get("EMAIL_RESEND_MIN_INTERVAL",
                                                            RESEND_MIN_INTERVAL))
        sent = last_sent(ctx.session)
        if sent is not None and utcnow() - sent < interval:
            wait = int((interval - (utcnow() - sent)).total_seconds()) + 1
            return f"Please wait {wait} seconds before asking for another email."
        if for_identified(ctx.session):
            return self.send(ctx) or "If an account matches, a new email is on its way to it."
        return self.send(ctx) or f"A new email is on its way to {self.recipient(ctx)}."
