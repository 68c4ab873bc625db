"""User login stage: signs in the user the flow wrote."""

from __future__ import annotations

from .base import Deny, Next, StageType


class UserLoginStage(StageType):
    type_name = "user_login"
    label = "User login"
    description = "Signs in the account the flow created."
    model = "authentik_stages_user_login.userloginstage"
    # No options yet: authentik's session_duration, remember_me_offset... are reported as not
    # used when a blueprint carries them, until this stage declares and honours them.

    def run(self, ctx) -> Next | Deny:
        if ctx.session.user_id is None:
            return Deny("Nothing to sign in", "This flow has no user to sign in yet.", 400)
        ctx.login_user_id = ctx.session.user_id
        return Next()
