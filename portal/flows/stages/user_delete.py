"""User delete stage: the person deletes their own account (authentik's UserDeleteStage, the
heart of an unenrollment flow).

authentik's stage deletes at once and relies on the flow to ask first; the portal's asks itself
(a page with a box to tick, taken by POST), so authentik's own unenrollment example, which binds
nothing before it, cannot delete an account on a mere visit or a prefetch.
"""

from __future__ import annotations

from wtforms import fields, validators
from wtforms.form import BaseForm

from ...auth.service import AccountError, delete_account
from .base import Deny, Next, Retry, StageType

CONFIRM_KEY = "confirm"


class UserDeleteStage(StageType):
    type_name = "user_delete"
    label = "User delete"
    description = "Deletes the person's own account once they confirm, and signs them out."
    model = "authentik_stages_user_delete.userdeletestage"
    interactive = True
    template = "flow/user_delete.html"
    needs_stored_session = False  # the confirmation page only reads; its POST deletes

    def form(self, ctx, formdata=None):
        form = BaseForm([(CONFIRM_KEY, fields.BooleanField(
            "Yes, delete my account and everything that belongs to it.",
            validators=[validators.DataRequired("Tick this box to delete your account.")]))])
        form.process(formdata)
        form.account = ctx.pending_user()  # shown on the page: whose account goes
        return form

    def submit(self, ctx, form) -> Next | Retry | Deny:
        if not form.validate():
            return Retry({k: list(v) for k, v in form.errors.items()})
        user = ctx.pending_user()
        if user is None:
            return Deny("There is no account to delete",
                        "Sign in first, then open this page again.", 400)
        # The flow session must not point at the row it outlives (flow_sessions.user_id cascades).
        ctx.session.user_id = None
        ctx.set_pending_user(None)
        try:
            delete_account(user, ip=ctx.client_ip, detail={"flow": ctx.flow.slug})
        except AccountError as exc:
            return Deny("This account cannot be deleted", str(exc), 403)
        ctx.sign_out = True
        ctx.notify("Your account has been deleted.", "success")
        return Next()
