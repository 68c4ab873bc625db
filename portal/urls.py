"""Absolute links for emails, copy buttons and the setup link."""

from flask import current_app


def base_url() -> str:
    """The only source of absolute links: BASE_URL, never the request's Host header (which a
    visitor chooses, and with it where a victim's emailed token would point). config.resolve
    makes sure it is set: required in production, the local server in development."""
    return current_app.config["BASE_URL"]
