"""Source stage: the person goes through an SSO source, inside any flow (authentik's
SourceStage).

Its page offers "Continue with <source>"; the round trip (portal.sources) notes the identity on
the flow session and brings the person back here, and the stage is done: in a sign-in flow the
identity's account is the pending, authenticated user; in an enrollment flow the prompts after
it are pre-filled from the provider's claims.
"""

from __future__ import annotations

from wtforms.form import BaseForm

from ...sources.service import sso_identity
from ..context import noted
from .base import Next, Retry, StageType
from .options import SOURCE, TEXT, Option, parse_authentik_duration


def _duration(value) -> None:
    parse_authentik_duration(value)


class SourceStage(StageType):
    type_name = "source"
    label = "Source"
    description = "Sends the person through an SSO source (OpenID Connect) and back."
    model = "authentik_stages_source.sourcestage"
    interactive = True
    template = "flow/source.html"
    needs_stored_session = False  # the button's POST stores the session before leaving
    declared_options = (
        Option("source", SOURCE, "Source", required=True,
               choices=lambda needs: [(s.id, f"{s.name} ({s.slug})") for s in needs.sources()],
               help="The OpenID Connect source the person goes through."),
        Option("resume_timeout", TEXT, "Resume within", default="minutes=10", max_length=100,
               validate=_duration,
               help="authentik's duration; the portal's own limit is SSO_ATTEMPT_LIFETIME."),
    )

    @property
    def source(self):
        return self.option("source").kind.row(self.options.get("source"))

    def enter(self, ctx):
        identity = sso_identity(ctx.session)
        source = self.source
        came_back = bool(identity and source is not None
                         and identity.get("source_id") == source.id
                         and noted(ctx.session, "sso_binding") == ctx.binding.id)
        return Next() if came_back else None

    def form(self, ctx, formdata=None):
        form = BaseForm([])
        form.process(formdata)
        return form

    def submit(self, ctx, form):
        """The page's own POST (not the button, which goes to the provider): stay here."""
        return self.enter(ctx) or Retry({})
