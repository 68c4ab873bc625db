"""The REST API, /api/v1: JSON over the same service layer as the pages, OpenAPI 3.1 generated
from the code by flask-smorest, served at /api/v1/openapi.json with a documentation page at
/api/v1/docs whose assets the portal serves itself (static/vendor/swagger-ui).

Views here are thin: parse (schemas), call the service with the Caller (user, token, grants,
tenant), shape the answer. Errors are problem+json (problems.py), drawn by portal.errors.
"""

from __future__ import annotations

import http

from flask import Blueprint as FlaskBlueprint
from flask import Flask, render_template
from flask_smorest import Api
from flask_smorest.utils import prepare_response

from .. import ratelimits
from ..models import DEFAULT_TENANT_SLUG
from .problems import API_PREFIX, PROBLEM_TYPE
from .schemas import ProblemSchema

# Kestra's /api/v1/{tenant}/...: the tenant-scoped resources answer under a second prefix too,
# the very same views (flask-smorest registers each blueprint twice, under another name).
TENANT_SCOPED = ("api_invitations", "api_users", "api_access", "api_flows", "api_audit")
TENANT_PARAMETER = {
    "name": "tenant", "in": "path", "required": True, "example": DEFAULT_TENANT_SLUG,
    "description": "The tenant's slug. A token acts only in its own tenant (any other is a "
                   "404); an instance superadmin's token acts in any.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 63,
               "pattern": "^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"},
}

SECURITY_SCHEMES = {"bearerAuth": {"type": "http", "scheme": "bearer",
                                   "description": "An API token from your account page or "
                                                  "`flask --app wsgi api-tokens create`."}}


class PortalApi(Api):
    """flask-smorest's Api with RFC 9457 errors, documented as application/problem+json."""

    ERROR_SCHEMA = ProblemSchema

    def _register_error_handlers(self):
        """None: portal.errors draws every error, and answers API requests with problems."""

    def _register_responses(self):
        for status in http.HTTPStatus:
            response = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_TYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "An error, as RFC 9457 problem details", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_TYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


docs_bp = FlaskBlueprint("api_docs_page", __name__, url_prefix=API_PREFIX)


@docs_bp.route("/docs")
def docs():
    return render_template("api/docs.html")


def init_app(app: Flask) -> None:
    """Bind the API to this app (one Api object per app: its spec is the app's)."""
    from ..extensions import csrf, limiter
    from . import access, audit, auth, flows, invitations, me, tenants, users

    app.config.setdefault("API_TITLE", "Invitation portal API")
    app.config.setdefault("API_VERSION", "v1")
    app.config.setdefault("OPENAPI_VERSION", "3.1.0")
    app.config.setdefault("OPENAPI_URL_PREFIX", API_PREFIX)
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    app.config.setdefault("API_SPEC_OPTIONS", {
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "components": {"securitySchemes": SECURITY_SCHEMES},
        "info": {"description": "Invitations, users, groups, roles, flows and the audit log, "
                                "for scripts. Authenticate with `Authorization: Bearer <token>`."},
    })
    api = PortalApi(app)
    for module in (invitations, users, access, flows, audit, tenants, me):
        blueprint = module.blp
        if not getattr(blueprint, "_portal_ready", False):  # module-level: prepare once
            blueprint.url_value_preprocessor(auth.take_path_tenant)
            blueprint.before_request(auth.authenticate)
            blueprint.teardown_request(auth.end_request)
            # Both registrations: the limiter and CSRF find the blueprint object, whose name
            # is the first one (tests/api/test_auth.py checks the shared budget).
            limiter.shared_limit(auth.rate_limit, scope="api", key_func=auth.rate_limit_key)(blueprint)
            blueprint.after_request(ratelimits.add_api_headers)
            csrf.exempt(blueprint)  # a token, never a cookie, authorises a change (auth.py)
            blueprint._portal_ready = True
        api.register_blueprint(blueprint, url_prefix=API_PREFIX + blueprint.url_prefix)
        if blueprint.name in TENANT_SCOPED:
            api.register_blueprint(blueprint, name=blueprint.name + "_in_tenant",
                                   parameters=[TENANT_PARAMETER],
                                   url_prefix=f"{API_PREFIX}/<tenant>{blueprint.url_prefix}")
    app.register_blueprint(docs_bp)
    app.extensions["portal_api"] = api
