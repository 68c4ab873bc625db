"""The caller themselves: who they are, through which token, and the invitations addressed to
them (Kestra's /api/v1/me/invitations). Accepting or declining is not here yet: it waits for
the "existing users accept invitations" service (invitations.service.grant_access)."""

from __future__ import annotations

from flask_smorest import Blueprint

from ..invitations import service
from . import schemas as s
from .auth import caller

blp = Blueprint("api_me", __name__, url_prefix="/me", description="You: your token and your "
                "pending invitations.")


@blp.route("/")
@blp.response(200, s.MeSchema)
def me():
    who = caller()
    token = who.token
    return {"user": who.user,
            "token": None if token is None else {"id": token.id, "name": token.name,
                                                 "scopes": token.scopes,
                                                 "expires_at": token.expires_at}}


@blp.route("/invitations")
@blp.response(200, s.PendingInvitationSchema(many=True))
def my_invitations():
    """Pending invitations addressed to your account's email address (needs no permission)."""
    who = caller()
    return [{"id": i.id, "name": i.name, "flow": i.flow, "expires_at": i.expires_at,
             "groups": i.groups,
             "invited_by": i.created_by.display_name if i.created_by else None}
            for i in service.pending_for_address(who.user.email)]
