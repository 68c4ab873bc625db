"""The caller themselves: who they are, through which token, and the invitations addressed to
their verified email address in any tenant (Kestra's /api/v1/me/invitations), which they may
accept or decline: the same service as the account page (invitations.service.pending_for,
grant_access, decline), so the same refusals, grants and audit events."""

from __future__ import annotations

from flask_smorest import Blueprint

from ..invitations import service
from . import schemas as s
from .auth import caller
from .problems import ApiError

blp = Blueprint("api_me", __name__, url_prefix="/me", description="You: your token and your "
                "pending invitations, to accept or decline.")


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
    """Pending invitations addressed to your account's verified email address, in every tenant
    (needs no permission; an account without a verified address has none)."""
    who = caller()
    return [{"id": i.id, "name": i.name, "tenant": i.tenant, "flow": i.flow,
             "expires_at": i.expires_at, "groups": i.groups,
             "invited_by": i.created_by.display_name if i.created_by else None}
            for i in service.pending_for(who.user)]


def _pending(invitation_id: int):
    """One of the caller's pending invitations, else 404 (another person's is as if unknown)."""
    invitation = service.pending_invitation(caller().user, invitation_id)
    if invitation is None:
        raise ApiError(404, "No such pending invitation of yours.")
    return invitation


def _refused(refusal: service.Refusal) -> ApiError:
    # An invitation that exists but can no longer be used (expired, revoked, used up: 410 on
    # the invitee's page) is a conflict with its state for a client.
    status = 409 if refusal.status in (404, 410) else refusal.status
    return ApiError(status, refusal.message, title=refusal.title)


@blp.route("/invitations/<int:invitation_id>/accept", methods=["POST"])
@blp.response(200, s.AcceptedSchema)
def accept_invitation(invitation_id: int):
    """Accept: join the invitation's tenant with its groups and roles, as on the account page
    (needs a token, no permission). 403 when it is for another address, 409 when it can no
    longer be used or you accepted it already."""
    who = caller()
    invitation = _pending(invitation_id)
    result = service.grant_access(who.user, invitation, ip=who.ip)
    if isinstance(result, service.Refusal):
        raise _refused(result)
    return {"invitation_id": invitation.id, "accepted": True, "tenant": invitation.tenant,
            "groups": result.groups}


@blp.route("/invitations/<int:invitation_id>/decline", methods=["POST"])
@blp.response(200, s.DeclinedSchema)
def decline_invitation(invitation_id: int):
    """Decline: nothing is given or used up; it leaves your pending list."""
    who = caller()
    invitation = _pending(invitation_id)
    service.decline(who.user, invitation, ip=who.ip)
    return {"invitation_id": invitation.id, "declined": True}
