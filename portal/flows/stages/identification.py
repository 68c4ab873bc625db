"""Identification stage: who is signing in (authentik's IdentificationStage).

The person types a username or an email address (`user_fields` says which); the account it names
becomes the flow's pending user (ctx.set_pending_user) for the stages after it: the password
stage checks its password, user login signs it in. With `pretend_user_exists` an identifier that
names no active account goes on exactly like one that does, so the page never tells whether an
account exists; the password stage then fails it the same way (and as slowly).
"""

from __future__ import annotations

from wtforms import fields, validators
from wtforms.form import BaseForm

from ...auth.service import USER_FIELDS, find_user
from ..context import note, noted
from .base import Next, Retry, StageType
from .options import BOOL, CHOICES, FLOW, SOURCES, STAGE, Option
from .registry import stage_type_for

FIELD = "login"  # the form field (kept from the old sign-in form: browsers fill it in)
FAILED = "Failed to authenticate."  # authentik's words: nothing about which part was wrong
FIELD_LABELS = {"username": "Username", "email": "Email"}


def pending_identifier(session) -> str:
    """What the person typed on the identification page (for the password stage's page, its
    audit events and the sign-in budget)."""
    return str(noted(session, "identifier") or "")


def shown_identity(session) -> str:
    """Whom the next pages say is signing in: the typed identifier, or the matched username."""
    return str(noted(session, "shown_as") or pending_identifier(session))


class IdentificationStage(StageType):
    type_name = "identification"
    label = "Identification"
    description = "Asks for a username or email address; the account it names signs in next."
    model = "authentik_stages_identification.identificationstage"
    interactive = True
    template = "flow/identification.html"
    needs_stored_session = False  # showing the page only reads
    # An unknown identifier refused (pretend_user_exists off) counts like a wrong password, so
    # nobody can test addresses faster than passwords.
    sign_in_attempt = True
    names_the_account = True
    declared_options = (
        Option("user_fields", CHOICES, "Identify by", default=list(USER_FIELDS),
               choices=[("username", "Username"), ("email", "Email")],
               help="What the person may type. None ticked: both."),
        Option("pretend_user_exists", BOOL, "Pretend the account exists", default=True,
               help="An unknown identifier goes on to the password page and fails there, so "
                    "nobody learns which accounts exist."),
        Option("show_matched_user", BOOL, "Show the matched user", default=True,
               help="The next page shows the account's username instead of what was typed "
                    "(this tells whoever typed an address that an account has it)."),
        Option("password_stage", STAGE, "Ask for the password on this page",
               choices=lambda needs: [(s.id, s.name) for s in needs.stages("password")],
               help="A password stage whose check runs here, so the flow needs no page of its "
                    "own for it (leave that stage unbound)."),
        Option("enrollment_flow", FLOW, "Sign-up flow",
               help='Linked from the page as "Sign up".'),
        Option("recovery_flow", FLOW, "Recovery flow",
               help='Linked from the page as "Forgot password?".'),
        Option("sources", SOURCES, "Sign in with", default=[],
               choices=lambda needs: [(s.id, f"{s.name} ({s.slug})") for s in needs.sources()],
               help='SSO sources shown as "Sign in with <source>" buttons on this page.'),
    )

    def shown_sources(self) -> list:
        """The enabled sources this page offers, in the option's order."""
        from ...sources.service import sources_by_ids

        return sources_by_ids(self.options.get("sources"))

    def enter(self, ctx):
        """Back from the provider with the account found (portal.sources): this stage is done."""
        from ...sources.service import signed_in_here

        return Next() if signed_in_here(ctx) else None

    @property
    def user_fields(self) -> tuple[str, ...]:
        chosen = [f for f in (self.options.get("user_fields") or []) if f in USER_FIELDS]
        return tuple(chosen) or USER_FIELDS

    @property
    def field_label(self) -> str:
        return " or ".join(FIELD_LABELS[f].lower() for f in self.user_fields).capitalize()

    def linked(self, key: str):
        """The row a reference option names: the flows the page links to, the password stage
        (None when unset or deleted)."""
        return self.option(key).kind.row(self.options.get(key))

    @property
    def password_stage(self):
        """The password stage checked on this page (its form field and its rule), or None."""
        row = self.linked("password_stage")
        stage = stage_type_for(row) if row is not None else None
        return stage if hasattr(stage, "check") else None

    def field_keys(self) -> set[str]:
        return {FIELD} | (self.password_stage.field_keys() if self.password_stage else set())

    def form(self, ctx, formdata=None):
        autocomplete = "email" if self.user_fields == ("email",) else "username"
        entries = [(FIELD, fields.StringField(
            self.field_label, validators=[validators.InputRequired(), validators.Length(max=320)],
            render_kw={"autocomplete": autocomplete, "autofocus": True}))]
        if self.password_stage is not None:
            entries.append(("password", self.password_stage.field(autofocus=False)))
        form = BaseForm(entries)
        form.process(formdata)
        if formdata is None and pending_identifier(ctx.session):
            form[FIELD].data = pending_identifier(ctx.session)  # sent back here: keep the text
        return form

    def submit(self, ctx, form) -> Next | Retry:
        if not form.validate():
            return Retry({k: list(v) for k, v in form.errors.items()})
        identifier = form[FIELD].data.strip()
        user = find_user(identifier, by=self.user_fields)
        if user is not None and not user.active:
            user = None  # a deactivated account is treated as no account
        if user is None and not self.options.get("pretend_user_exists", True):
            return Retry({FIELD: [FAILED]})
        ctx.set_pending_user(user)  # None: nobody (the password stage then fails alike)
        note(ctx.session, "identifier", identifier)
        shown = user.username if user is not None and self.options.get(
            "show_matched_user", True) else identifier
        note(ctx.session, "shown_as", shown)
        note(ctx.session, "authenticated", False)  # a new identity proves nothing yet
        if self.password_stage is not None:
            return self.password_stage.check(ctx, form["password"].data)
        return Next()
