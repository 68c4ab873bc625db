"""Probes for a load balancer or orchestrator: no session, no rate limit, no secrets."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .extensions import db, limiter

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.route("/healthz")
@limiter.exempt
def healthz():
    """200 when the database answers, 503 when it does not (the reason goes to the log only)."""
    try:
        db.session.execute(text("SELECT 1"))
        database = "ok"
    except SQLAlchemyError as exc:
        db.session.rollback()
        log.warning("health check: database does not answer: %s", type(exc).__name__)
        database = "unavailable"
    healthy = database == "ok"
    response = jsonify(status="ok" if healthy else "unavailable", database=database)
    response.status_code = 200 if healthy else 503
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/livez")
@limiter.exempt
def livez():
    """The process answers; touches nothing else (also the benchmark's ceiling)."""
    response = jsonify(status="ok")
    response.headers["Cache-Control"] = "no-store"
    return response
