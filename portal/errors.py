"""Error pages in the portal's look, from one function for every code."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Flask, render_template, request
from flask.globals import request_ctx
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DataError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge, SecurityError

log = logging.getLogger(__name__)

MESSAGES = {
    400: ("Bad request", "The request could not be understood. Go back and try again."),
    403: ("Forbidden", "You do not have permission to see this page."),
    404: ("Page not found", "There is nothing at this address. Check the link and try again."),
    405: ("Method not allowed", "This page cannot be used that way."),
    410: ("Gone", "This page is no longer available."),
    413: ("Too large to accept", "What you sent is larger than the portal accepts. Go back and "
                                 "choose a smaller file, or send less at once."),
    429: ("Too many requests", "You have tried this too often. Wait a minute, then try again."),
    500: ("Something went wrong", "The error was logged. Try again in a moment."),
    503: ("Service unavailable", "The portal is busy. Try again in a moment."),
}


def render_error(status: int, title: str | None = None, message: str | None = None):
    """The error page; under /api/ the same error as application/problem+json."""
    from .api.problems import is_api_request, problem

    default_title, default_message = MESSAGES.get(status, MESSAGES[500])
    if is_api_request():
        return problem(status, title or default_title, message or default_message)
    return (
        render_template("errors/error.html", status=status, title=title or default_title,
                        message=message or default_message),
        status,
    )


def _megabytes(count: int) -> str:
    return f"{count / 1024 / 1024:.0f} MB" if count >= 1024 * 1024 else f"{max(1, count // 1024)} kB"


def register(app: Flask) -> None:
    @app.before_request
    def refuse_nul_characters():
        """No text the portal takes contains NUL, and PostgreSQL refuses it outright: a clear
        400 for any query or form value carrying one, before a view passes it to the database."""
        values = [*request.args.values(), *request.form.values()]
        if any("\x00" in value for value in values):
            return render_error(400, "Invalid characters",
                                "The request contained a character that is not allowed. "
                                "Go back, check what you typed, and send it again.")
        return None

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return render_error(
            400, "The form expired",
            "For your security the form could not be accepted (its security token was missing "
            "or had expired). Go back, reload the page, and send it again.",
        )

    @app.errorhandler(SecurityError)
    def untrusted_host(error: SecurityError):
        """A Host outside TRUSTED_HOSTS (config.trusted_hosts). Flask refused to route it, so no
        URL adapter exists: bind one to BASE_URL so the error page can be drawn."""
        base = urlsplit(app.config["BASE_URL"])
        request_ctx.url_adapter = app.url_map.bind(base.netloc, script_name=base.path or None,
                                                   url_scheme=base.scheme)
        return render_error(400, "Unknown address",
                            "This portal does not answer to that address. Check the link.")

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error: RequestEntityTooLarge):
        """Refused from the Content-Length alone (or once a field passes its limit): say how much
        fits, so the visitor knows what to change."""
        limit = app.config.get("MAX_CONTENT_LENGTH")
        title, message = MESSAGES[413]
        size = request.content_length
        if limit and size is not None and size <= limit:
            # The whole request fits: one text field passed MAX_FORM_MEMORY_SIZE (derived from
            # BULK_INVITE_MAX_BYTES), or the form had too many parts.
            field_limit = app.config.get("MAX_FORM_MEMORY_SIZE") or 0
            message = ("A text field in what you sent is larger than the portal accepts "
                       f"(at most {_megabytes(field_limit)} in one field). Go back and send less "
                       "at once.")
        elif limit:
            message = message.replace("accepts.", f"accepts (at most {_megabytes(limit)} at once).")
        return render_error(413, title, message)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        from .api.problems import from_http_exception, is_api_request

        if is_api_request():
            return from_http_exception(error)
        response = render_error(error.code or 500)
        if error.code == 405 and error.valid_methods:
            return (*response, {"Allow": ", ".join(error.valid_methods)})
        if error.code == 429:
            from .ratelimits import headers

            return (*response, headers(remaining=False))
        return response

    @app.errorhandler(DataError)
    @app.errorhandler(OverflowError)
    def value_out_of_range(error: Exception):
        """A value the database cannot hold (a huge number, say) slipped past the checks: the
        request was bad, not the server. Checks at the edges keep this rare; it is logged."""
        log.warning("request value refused by the database: %s", type(error).__name__)
        from .extensions import db

        db.session.rollback()
        return render_error(400, "Bad request",
                            "A value in the request is out of range. Check it and try again.")

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        log.exception("unhandled error")
        from .extensions import db

        db.session.rollback()
        return render_error(500)
