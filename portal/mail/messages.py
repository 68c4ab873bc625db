"""The emails the portal writes, rendered from templates/email/ (plain text and HTML)."""

from __future__ import annotations

from datetime import datetime

from flask import current_app, render_template

from ..models import Invitation, User
from ..templating import format_datetime, humanize_delta


def _inviter(user: User | None) -> str:
    if user is None:
        return current_app.config.get("SITE_NAME", "The portal")
    return f"{user.display_name} ({user.email})" if user.email else user.display_name


def _render(name: str, **context) -> tuple[str, str]:
    context.setdefault("site_name", current_app.config.get("SITE_NAME", "Invitation portal"))
    return (render_template(f"email/{name}.txt", **context),
            render_template(f"email/{name}.html", **context))


def _expiry(expires_at: datetime | None) -> dict:
    return {"expires_words": humanize_delta(expires_at) if expires_at else "",
            "expires_date": format_datetime(expires_at) if expires_at else ""}


def invitation_email(invitation: Invitation, link: str, inviter: User | None) -> tuple[str, str, str]:
    """Subject, text and HTML of an invitation."""
    site = current_app.config.get("SITE_NAME", "Invitation portal")
    who = inviter.display_name if inviter else site
    subject = f"{who} invited you to {site}"
    text, html = _render("invitation", invitation=invitation, link=link, inviter=_inviter(inviter),
                         message=(invitation.message or "").strip(), **_expiry(invitation.expires_at))
    return subject, text, html


def set_password_email(user: User, link: str, inviter: User | None,
                       expires_at: datetime) -> tuple[str, str, str]:
    """Subject, text and HTML of the link a directly created user sets a password with."""
    site = current_app.config.get("SITE_NAME", "Invitation portal")
    subject = f"Your account at {site}: set your password"
    text, html = _render("set_password", user=user, link=link, inviter=_inviter(inviter),
                         **_expiry(expires_at))
    return subject, text, html
