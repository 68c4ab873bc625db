"""Consent stage: a text (terms, a policy) the invitee accepts with a checkbox.

Each acceptance is a ConsentRecord with its time and the text's version; the user is attached
(`after_user_created`) when the account is created later in the flow.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import update
from wtforms import fields, validators
from wtforms.form import BaseForm

from ...extensions import db
from ...models import ConsentRecord
from .base import Next, Retry, StageType
from .options import TEXT, TEXTAREA, Option

CHECKBOX_KEY = "accept"
DEFAULT_LABEL = "I have read and accept these terms."


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
    # authentik's mode and consent_expire_in are not declared: every run asks again, and an
    # import that carries them says they are not used.
    declared_options = (
        Option("consent_title", TEXT, "Heading", default="Terms of use", max_length=255),
        Option("consent_text", TEXTAREA, "Text to accept", default="", required=True,
               max_length=100_000, rows=12),
        Option("consent_version", TEXT, "Version", default="", max_length=100,
               help="Stored with each acceptance. Empty: derived from the text, so every edit "
                    "counts as a new version."),
        Option("checkbox_label", TEXT, "Checkbox label", default=DEFAULT_LABEL, max_length=255),
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

    def form(self, ctx, formdata=None):
        label = str(self.options.get("checkbox_label") or "").strip() or DEFAULT_LABEL
        form = BaseForm([(CHECKBOX_KEY, fields.BooleanField(
            label, validators=[validators.DataRequired("Tick this box to continue.")]))])
        form.process(formdata)
        return form

    def submit(self, ctx, form) -> Next | Retry:
        if not form.validate():
            return Retry({k: list(v) for k, v in form.errors.items()})
        db.session.add(ConsentRecord(
            stage_id=self.stage.id, stage_name=self.stage.name, flow_session_id=ctx.session.id,
            user_id=ctx.session.user_id, version=self.version, text_sha256=text_digest(self.text),
        ))
        return Next()
