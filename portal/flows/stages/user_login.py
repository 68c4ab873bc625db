"""User login stage: signs in the flow's user (authentik's UserLoginStage).

`session_duration` (authentik's "hours=2", "days=30"; "seconds=0" = until the browser closes)
is how long the sign-in lasts; with `remember_me_offset` the page asks "Stay signed in?" and a
yes adds that much. The web layer signs in through portal.auth.sessions.sign_in, so the idle
timeout and the session generation (sign out everywhere, password change, deactivation) apply to
every sign-in alike.
"""

from __future__ import annotations

from datetime import timedelta

from wtforms import fields
from wtforms.form import BaseForm

from ...audit import Action, record_event
from ..context import noted
from .base import Deny, Next, StageType
from .options import TEXT, Option, parse_authentik_duration

REMEMBER = "remember_me"
MAX_DURATION = timedelta(days=366)


def parse_session_duration(value) -> timedelta:
    """A session duration as authentik writes it; zero means "this browser session"."""
    delta = parse_authentik_duration(str(value or "").strip() or "seconds=0", allow_zero=True)
    if delta > MAX_DURATION:
        raise ValueError("use at most a year")
    return delta


class UserLoginStage(StageType):
    type_name = "user_login"
    label = "User login"
    description = "Signs in the account the flow created or identified."
    model = "authentik_stages_user_login.userloginstage"
    declared_options = (
        Option("session_duration", TEXT, "Session duration", default="seconds=0", max_length=100,
               validate=parse_session_duration,
               help='How long the sign-in lasts, e.g. "hours=8" or "days=30"; "seconds=0": until '
                    "the browser is closed. The idle timeout applies either way."),
        Option("remember_me_offset", TEXT, '"Stay signed in" adds', default="seconds=0",
               max_length=100, validate=parse_session_duration,
               help='Not zero: the person is asked "Stay signed in?", and a yes adds this much.'),
    )

    def __init__(self, stage) -> None:
        super().__init__(stage)
        # Only with a "stay signed in" offset is there something to ask.
        self.interactive = self.offset > timedelta(0)
        self.template = "flow/user_login.html" if self.interactive else None

    def _duration(self, key: str) -> timedelta:
        try:
            return parse_session_duration(self.options.get(key))
        except ValueError:
            return timedelta(0)

    @property
    def offset(self) -> timedelta:
        return self._duration("remember_me_offset")

    def form(self, ctx, formdata=None):
        form = BaseForm([(REMEMBER, fields.BooleanField("Stay signed in"))])
        form.process(formdata)
        return form

    def submit(self, ctx, form):
        return self._login(ctx, remember=bool(form[REMEMBER].data))

    def run(self, ctx) -> Next | Deny:
        return self._login(ctx, remember=False)

    def _login(self, ctx, *, remember: bool) -> Next | Deny:
        user = ctx.pending_user()  # identified and checked, or just written
        if user is None:
            return Deny("Nothing to sign in", "This flow has no user to sign in yet.", 400)
        identified = noted(ctx.session, "identifier") is not None
        if identified and not noted(ctx.session, "authenticated"):
            # An identification alone proves nothing: some stage must have checked the person.
            return Deny("Sign-in failed", "This sign-in was not completed. Start again.", 403)
        ctx.login_user_id = user.id
        lifetime = self._duration("session_duration") + (self.offset if remember else timedelta(0))
        ctx.login_lifetime = lifetime if lifetime > timedelta(0) else None
        if identified:
            record_event(Action.SIGN_IN_SUCCEEDED, actor=user, ip=ctx.client_ip, obj=user)
        return Next()
