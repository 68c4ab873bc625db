"""The audit log over the API: list and filter, as the admin's audit page."""

from __future__ import annotations

from flask_smorest import Blueprint

from ..access import AUDIT_VIEW
from ..audit import events_query
from ..extensions import db
from ..pagination import LastPageKnowsTheTotal
from . import schemas as s
from .auth import require

blp = Blueprint("api_audit", __name__, url_prefix="/audit-events",
                description="The audit log: who did what, when, through which token.")


@blp.route("/")
@blp.arguments(s.AuditArgs, location="query")
@blp.response(200, s.AuditPage)
def list_events(args):
    """Events newest first; `action` is one action (invitation.created) or a family (invitation)."""
    require(AUDIT_VIEW, everywhere=True)
    query = events_query(action=args["action"].strip(), actor=args["actor"].strip(),
                         object_type=args["object_type"].strip(), search=args["q"].strip(),
                         since=args.get("since"), until=args.get("until"))
    page, per_page = args["page"], args["per_page"]
    result = LastPageKnowsTheTotal(select=query, session=db.session(), per_page=per_page,
                                   page=min(page, 2**62 // per_page), error_out=False)
    return {"items": [{"id": e.id, "action": e.action, "created_at": e.created_at,
                       "actor": e.actor_name, "ip_address": e.ip_address,
                       "object_type": e.object_type, "object_id": e.object_id,
                       "object": e.object_repr, "detail": e.detail or {}} for e in result.items],
            "page": page, "per_page": per_page, "total": result.total or 0}
