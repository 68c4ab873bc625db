"""Errors as application/problem+json (RFC 9457), with field errors a client can map back.

Every error under /api/ is drawn here: the portal's one error module (portal.errors) hands API
requests to `problem` instead of the HTML page, so a 404, a 405, a 413, a 429 or an unexpected
failure all answer alike.
"""

from __future__ import annotations

from http import HTTPStatus

from flask import jsonify, request
from werkzeug.exceptions import HTTPException

from .. import ratelimits

API_PREFIX = "/api/v1"
PROBLEM_TYPE = "application/problem+json"


def is_api_request() -> bool:
    path = request.path
    return path == "/api" or path.startswith("/api/")


class ApiError(HTTPException):
    """Raised by API views: the status, a short title, the detail and field errors."""

    def __init__(self, status: int, detail: str, *, title: str | None = None,
                 errors: list[dict] | None = None, headers: dict | None = None) -> None:
        super().__init__(description=detail)
        self.code = status
        self.title = title
        self.errors = errors or []
        self.extra_headers = headers or {}


def field_error(field: str, message: str, status: int = 422) -> ApiError:
    return ApiError(status, message, title="Invalid request",
                    errors=[{"field": field, "location": "json", "message": message}])


def problem(status: int, title: str | None = None, detail: str | None = None, *,
            errors: list[dict] | None = None, headers: dict | None = None):
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    body = {"type": "about:blank", "title": title or phrase, "status": status,
            "detail": detail or phrase, "instance": request.path}
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    response.mimetype = PROBLEM_TYPE
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _flatten(messages, location: str, prefix: str = "") -> list[dict]:
    """webargs' {"json": {"rows": {"0": {"email": ["..."]}}}} as [{field: "rows.0.email", ...}]."""
    found = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            found += _flatten(value, location, name)
    elif isinstance(messages, list | tuple):
        for item in messages:
            if isinstance(item, dict | list | tuple):
                found += _flatten(item, location, prefix)
            else:
                found.append({"field": prefix or "_schema", "location": location,
                              "message": str(item)})
    else:
        found.append({"field": prefix or "_schema", "location": location, "message": str(messages)})
    return found


def from_http_exception(error: HTTPException):
    """An HTTPException (ours, webargs' 422, a 404, a 405...) as a problem."""
    status = error.code or 500
    headers = {}
    if isinstance(error, ApiError):
        return problem(status, error.title, error.description, errors=error.errors,
                       headers=error.extra_headers)
    errors = []
    data = getattr(error, "data", None) or {}
    messages = data.get("messages") if isinstance(data, dict) else None
    if isinstance(messages, dict):
        for location, found in messages.items():
            errors += _flatten(found, str(location))
    if status == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods)
    if status == 429:
        headers.update(ratelimits.headers(remaining=False))
    detail = error.description if status != 500 else None
    if status == 422 and not errors:
        detail = detail or "The request could not be processed."
    elif status == 422:
        detail = "Some fields are not valid; see errors."
    elif status == 400 and errors:
        detail = errors[0]["message"]
    return problem(status, None, detail, errors=errors, headers=headers)
