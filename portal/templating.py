"""Jinja filters and globals shared by every template."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from babel.dates import format_timedelta
from babel.lists import format_list
from flask import Flask


def format_datetime(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M UTC") -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime(fmt)


# The pages and emails are written in English; Babel words the amounts (plural rules included).
LOCALE = "en"
# A unit is used once the amount reaches two of it: 7 days stay "7 days" (not "1 week"), 36 hours
# stay "36 hours"; Babel rounds to the nearest, so a P7D invitation reads "in 7 days" from the
# moment it is made, not "in 6 days" as soon as a second has passed.
THRESHOLD = 2


def humanize_delta(value: datetime | None) -> str:
    """'in 7 days', '3 hours ago': how far a moment is from now."""
    if value is None:
        return "never"
    return format_timedelta(value - datetime.now(UTC), threshold=THRESHOLD, add_direction=True,
                            locale=LOCALE)


def humanize_duration(value: timedelta) -> str:
    """'1 hour 30 minutes': a duration in words, exact to the minute, for emails and pages."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(_amount(count * size, unit))
    return format_list(parts, style="unit-narrow", locale=LOCALE) if parts else _amount(seconds, "second")


def _amount(seconds: int, unit: str) -> str:
    """The amount in exactly this unit ("10 days", never rounded to "1 week")."""
    return format_timedelta(timedelta(seconds=seconds), granularity=unit, threshold=float("inf"),
                            locale=LOCALE)


def register(app: Flask) -> None:
    from .access import is_admin, is_superuser, shown_namespaces
    from .tenants import tenant_count

    # "Is this person an admin / a superuser" has one answer (portal.access); pages ask it too.
    app.add_template_global(is_admin, "is_admin")
    app.add_template_global(is_superuser, "is_superuser")
    # What a role attached directly covers (its own namespaces narrowed by the attachment's).
    app.add_template_global(shown_namespaces, "direct_namespaces")
    # A single-tenant install looks as it did before tenants: pages name a tenant only when
    # there are several.
    app.add_template_global(lambda: tenant_count() > 1, "several_tenants")
    app.add_template_filter(format_datetime, "datetime")
    app.add_template_filter(humanize_delta, "fromnow")
    app.add_template_filter(humanize_duration, "duration")
