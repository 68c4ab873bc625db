"""Jinja filters and globals shared by every template."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Flask


def format_datetime(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M UTC") -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime(fmt)


def humanize_delta(value: datetime | None) -> str:
    """'in 6 days', '3 hours ago': how far a moment is from now."""
    if value is None:
        return "never"
    seconds = (value - datetime.now(UTC)).total_seconds()
    future = seconds >= 0
    seconds = abs(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            text = f"{count} {unit}{'s' if count != 1 else ''}"
            break
    else:
        text = "less than a minute"
    return f"in {text}" if future else f"{text} ago"


def humanize_duration(value: timedelta) -> str:
    """'1 hour 30 minutes': a duration in words, for emails and pages."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
    return " ".join(parts) or "less than a minute"


def register(app: Flask) -> None:
    from .access import is_admin, is_superuser

    # "Is this person an admin / a superuser" has one answer (portal.access); pages ask it too.
    app.add_template_global(is_admin, "is_admin")
    app.add_template_global(is_superuser, "is_superuser")
    app.add_template_filter(format_datetime, "datetime")
    app.add_template_filter(humanize_delta, "fromnow")
    app.add_template_filter(humanize_duration, "duration")
