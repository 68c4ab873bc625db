"""Absolute links for emails and copy buttons."""

from flask import current_app, request


def base_url() -> str:
    """BASE_URL when set (behind a proxy it must be), else the address this request came to."""
    return current_app.config.get("BASE_URL") or request.url_root.rstrip("/")
