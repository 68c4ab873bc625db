"""Flows over the API: list, export as an authentik blueprint, import (dry run, then apply).
The same importer as the admin's import page: all or nothing, within the importer's ceiling."""

from __future__ import annotations

from flask_smorest import Blueprint
from sqlalchemy import select

from ..access import FLOWS_MANAGE
from ..audit import record_import
from ..extensions import db
from ..flows.blueprints import BlueprintError, export_flow, import_blueprint
from ..models import Flow
from ..tenants import visible
from . import schemas as s
from .auth import require
from .problems import ApiError

blp = Blueprint("api_flows", __name__, url_prefix="/flows",
                description="Flows: list, export and import authentik blueprints.")


def _manager():
    # A blueprint may touch any flow and flows share stages: "everywhere", as on the pages.
    return require(FLOWS_MANAGE, everywhere=True)


@blp.route("/")
@blp.response(200, s.FlowSchema(many=True))
def list_flows():
    _manager()
    return db.session.scalars(select(Flow).where(visible(Flow)).order_by(Flow.name)).all()


@blp.route("/<string:slug>/blueprint")
@blp.response(200, s.BlueprintSchema)
def export_blueprint(slug: str):
    """The flow as authentik blueprint YAML."""
    _manager()
    flow = db.session.scalar(select(Flow).filter_by(slug=slug[:100]).where(visible(Flow)))
    if flow is None:
        raise ApiError(404, "No such flow.")
    try:
        return {"slug": flow.slug, "yaml": export_flow(flow)}
    except BlueprintError as exc:
        raise ApiError(409, f"The flow cannot be exported: {exc}", title="Not possible now") from None


@blp.route("/import", methods=["POST"])
@blp.arguments(s.BlueprintImport)
@blp.response(200, s.ImportReportSchema)
def import_flows(data):
    """Import a blueprint: `dry_run` (the default) reports what would change and writes
    nothing; a refused blueprint is a 422 whose errors say why, entry by entry."""
    who = _manager()
    report = import_blueprint(data["blueprint"], actor=who.grants, dry_run=data["dry_run"])
    if not report.ok:
        raise ApiError(422, "The blueprint cannot be imported; nothing was changed.",
                       title="Invalid blueprint",
                       errors=[{"field": "blueprint", "location": "json", "message": str(e)}
                               for e in report.errors])
    if report.applied:
        flows = db.session.scalars(select(Flow).where(visible(Flow), Flow.slug.in_(report.flow_slugs))
                                   .order_by(Flow.name)).all()
        record_import(flows, report, actor=who.user, ip=who.ip)
    return {"applied": report.applied, "summary": report.summary(), "flows": report.flow_slugs,
            "warnings": [str(w) for w in report.warnings],
            "changes": [{"model": c.model, "action": c.action, "label": c.label,
                         "details": [str(d) for d in c.details]} for c in report.changes]}
