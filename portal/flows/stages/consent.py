"""Consent stage: a text (terms, a policy) the invitee accepts with a checkbox.

Each acceptance is a ConsentRecord with its time and the text's version; the user is attached
(`after_user_created`) when the account is created later in the flow.

authentik's `mode`: ask every time (`always_require`), or remember an acceptance of this stage's
current version by this person (`permanent`), or remember it for `consent_expire_in`
(`expiring`). Remembered means the page is skipped for the flow's pending user (see
FlowContext.pending_user); the expiry is read from the records' own times, so an admin who
shortens it shortens it for acceptances already given.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import select, update
from wtforms import fields, validators
from wtforms.form import BaseForm

from ...extensions import db
from ...models import ConsentRecord, utcnow
from .base import Next, Retry, StageType
from .options import CHOICE, TEXT, TEXTAREA, Option, parse_authentik_duration

CHECKBOX_KEY = "accept"
DEFAULT_LABEL = "I have read and accept these terms."
ALWAYS, PERMANENT, EXPIRING = "always_require", "permanent", "expiring"
MODES = ((ALWAYS, "Ask every time"), (PERMANENT, "Ask once (per version of the text)"),
         (EXPIRING, "Ask again after a while"))
DEFAULT_EXPIRY = "weeks=4"


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class ConsentStage(StageType):
    type_name = "consent"
    label = "Consent / terms"
    description = "A text to accept with a checkbox; each acceptance is recorded with its version."
    interactive = True
    template = "flow/consent.html"
    needs_stored_session = False  # showing the page only reads; its POST stores the session
    model = "authentik_stages_consent.consentstage"
    declared_options = (
        Option("consent_title", TEXT, "Heading", default="Terms of use", max_length=255),
        Option("consent_text", TEXTAREA, "Text to accept", default="", required=True,
               max_length=100_000, rows=12),
        Option("consent_version", TEXT, "Version", default="", max_length=100,
               help="Stored with each acceptance. Empty: derived from the text, so every edit "
                    "counts as a new version."),
        Option("checkbox_label", TEXT, "Checkbox label", default=DEFAULT_LABEL, max_length=255),
        Option("mode", CHOICE, "Ask", default=ALWAYS, choices=MODES,
               help="Once or for a while: remembered per person and version, for people the "
                    "flow knows (signed in, or identified earlier in the flow)."),
        Option("consent_expire_in", TEXT, "Remember for", default=DEFAULT_EXPIRY, max_length=100,
               validate=parse_authentik_duration,
               help="With \"ask again after a while\": authentik's format, e.g. weeks=4 or "
                    "days=1;hours=12."),
    )

    @classmethod
    def after_user_created(cls, ctx, user) -> None:
        """Terms accepted earlier in this flow now belong to the new account."""
        db.session.execute(
            update(ConsentRecord)
            .where(ConsentRecord.flow_session_id == ctx.session.id,
                   ConsentRecord.user_id.is_(None))
            .values(user_id=user.id)
        )

    @property
    def text(self) -> str:
        return str(self.options.get("consent_text") or "")

    @property
    def version(self) -> str:
        """The admin's version label, or one derived from the text so any edit is a new version."""
        return str(self.options.get("consent_version") or "").strip() or text_digest(self.text)[:12]

    @property
    def heading(self) -> str:
        return str(self.options.get("consent_title") or "").strip() or "Terms"

    @property
    def mode(self) -> str:
        mode = self.options.get("mode") or ALWAYS
        return mode if mode in dict(MODES) else ALWAYS

    def already_done(self, ctx) -> bool:
        """The pending user accepted this version before, and it is still remembered."""
        user = ctx.pending_user() if self.mode != ALWAYS else None
        if user is None:
            return False
        query = select(ConsentRecord.id).where(
            ConsentRecord.user_id == user.id, ConsentRecord.stage_id == self.stage.id,
            ConsentRecord.version == self.version)
        if self.mode == EXPIRING:
            try:
                lifetime = parse_authentik_duration(
                    self.options.get("consent_expire_in") or DEFAULT_EXPIRY)
            except ValueError:  # stored by hand: ask again rather than remember forever
                return False
            query = query.where(ConsentRecord.accepted_at > utcnow() - lifetime)
        return db.session.scalar(query.limit(1)) is not None

    def form(self, ctx, formdata=None):
        label = str(self.options.get("checkbox_label") or "").strip() or DEFAULT_LABEL
        form = BaseForm([(CHECKBOX_KEY, fields.BooleanField(
            label, validators=[validators.DataRequired("Tick this box to continue.")]))])
        form.process(formdata)
        return form

    def submit(self, ctx, form) -> Next | Retry:
        if not form.validate():
            return Retry({k: list(v) for k, v in form.errors.items()})
        user = ctx.pending_user()  # None before an enrollment flow writes its user
        db.session.add(ConsentRecord(
            stage_id=self.stage.id, stage_name=self.stage.name, flow_session_id=ctx.session.id,
            user_id=user.id if user is not None else ctx.session.user_id, version=self.version,
            text_sha256=text_digest(self.text),
        ))
        return Next()
