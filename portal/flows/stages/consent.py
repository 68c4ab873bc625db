"""Consent stage: a text (terms, a policy) the invitee accepts with a checkbox.

Each acceptance is a ConsentRecord with its time and the text's version; the user is attached
by the user-write stage when the account is created later in the flow.
"""

from __future__ import annotations

import hashlib

from wtforms import fields, validators
from wtforms.form import BaseForm

from ...extensions import db
from ...models import ConsentRecord
from .base import Next, Retry, StageType

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
