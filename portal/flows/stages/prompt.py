"""Prompt stage: one page of fields, validated server-side."""

from __future__ import annotations

from werkzeug.datastructures import MultiDict

from ...auth.service import username_problem
from ...security.passwords import hash_password, password_problems
from ..prompts import DISPLAY_TYPES, READ_ONLY_TYPES, build_form, to_json
from .base import Next, Retry, StageType
from .options import PROMPTS, Option


class PromptStage(StageType):
    type_name = "prompt"
    label = "Prompt"
    description = "A page of fields (prompts) for the invitee to fill in."
    interactive = True
    template = "flow/prompt.html"
    needs_stored_session = False  # showing the page only reads; its POST stores the session
    model = "authentik_stages_prompt.promptstage"
    declared_options = (
        Option("fields", PROMPTS, "Fields", default=[],
               help="The prompts this page shows, in their own order."),
    )

    @property
    def prompts(self):
        return list(self.stage.prompts)

    def asked(self, ctx) -> list:
        """The prompts this person is asked: an identity that came through an SSO source signs
        in there, so it is asked for no password (and gets none)."""
        from ...sources.service import sso_identity

        if sso_identity(ctx.session):
            return [p for p in self.prompts if p.type != "password"]
        return self.prompts

    def field_keys(self) -> set[str]:
        return {p.field_key for p in self.prompts if p.type not in DISPLAY_TYPES}

    def form(self, ctx, formdata=None):
        fixed = set(ctx.session.fixed_fields or []) & self.field_keys()
        if formdata is not None:
            # Values fixed by the invitation, hidden and read-only fields never come from the request.
            formdata = MultiDict(formdata)
            for prompt in self.asked(ctx):
                key = prompt.field_key
                if key in fixed or prompt.type in READ_ONLY_TYPES | {"hidden"}:
                    value = ctx.prompt_data.get(key, prompt.initial_value)
                    formdata.setlist(key, [] if value in (None, "") else [_as_form_value(value)])
        return build_form(self.asked(ctx), formdata=formdata, data=ctx.prompt_data, fixed=fixed)

    def submit(self, ctx, form) -> Next | Retry:
        form.validate()
        errors: dict[str, list[str]] = {k: list(v) for k, v in form.errors.items()}
        values = {
            p.field_key: to_json(form[p.field_key].data)
            for p in self.asked(ctx)
            if p.type not in DISPLAY_TYPES | READ_ONLY_TYPES | {"password"}
            and p.field_key in form._fields
            and not (p.type == "file" and form[p.field_key].data is None)
        }
        known = {**ctx.prompt_data, **values}
        for prompt in self.asked(ctx):
            key = prompt.field_key
            if prompt.type == "username" and key not in errors and values.get(key):
                # The address may come on a later page; then the user write checks with it.
                # The account a flow updates may keep its own username (user write's update).
                problem = username_problem(values[key], known.get("email"),
                                           account=ctx.pending_user())
                if problem:
                    errors[key] = [problem]
        password_hash = self._check_passwords(ctx, form, values, errors)
        if errors:
            return Retry(errors)
        ctx.update_prompt_data(values)
        if password_hash:
            ctx.session.password_hash = password_hash
        return Next()

    def _check_passwords(self, ctx, form, values, errors) -> str | None:
        """All password fields of a page must match; the first must pass the policy."""
        keys = [p.field_key for p in self.asked(ctx) if p.type == "password"]
        if not keys or any(k in errors for k in keys):
            return None
        first, *repeats = keys
        password = form[first].data or ""
        for key in repeats:
            if (form[key].data or "") != password:
                errors[key] = ["The passwords do not match."]
        known = {**ctx.prompt_data, **values}
        problems = password_problems(
            password, username=str(known.get("username", "")), email=str(known.get("email", ""))
        )
        if problems:
            errors[first] = problems
        if errors:
            return None
        return hash_password(password)


def _as_form_value(value) -> str:
    if isinstance(value, bool):
        return "y" if value else ""
    return "" if value is None else str(value)
