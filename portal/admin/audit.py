"""The audit log page, with filters and CSV export."""

from datetime import UTC, datetime, timedelta
from itertools import count

from flask import Response, render_template, request, stream_with_context

from ..access import AUDIT_VIEW
from ..audit import Action, events_query, export_csv
from ..extensions import db
from ..pagination import paginate
from . import bp, permission_required

PER_PAGE = 50
EXPORT_BATCH = 1000


def _date(name: str) -> datetime | None:
    try:
        return datetime.strptime(request.args.get(name, ""), "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None


def _filters() -> dict:
    until = _date("until")
    return {
        "action": request.args.get("action", "").strip(),
        "actor": request.args.get("actor", "").strip(),
        "object_type": request.args.get("object_type", "").strip(),
        "search": request.args.get("q", "").strip(),
        "since": _date("since"),
        "until": until + timedelta(days=1) if until else None,  # the whole day chosen
    }


@bp.route("/audit/")
@permission_required(AUDIT_VIEW, everywhere=True)
def audit_log():
    page = paginate(events_query(**_filters()), per_page=PER_PAGE)
    args = {k: v for k, v in request.args.items() if k != "page"}
    return render_template("admin/audit/list.html", page=page, actions=Action.all(), args=args)


@bp.route("/audit/export.csv")
@permission_required(AUDIT_VIEW, everywhere=True)
def audit_export():
    query = events_query(**_filters())
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")

    def events():
        """In pages, while the response streams (no server-side cursor left open)."""
        for offset in count(0, EXPORT_BATCH):
            batch = db.session.scalars(query.limit(EXPORT_BATCH).offset(offset)).all()
            yield from batch
            if len(batch) < EXPORT_BATCH:
                return
            db.session.expunge_all()

    def rows():
        yield from export_csv(events())

    return Response(
        stream_with_context(rows()),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.csv"'},
    )
