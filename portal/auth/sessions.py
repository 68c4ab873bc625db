"""The sign-in session in the cookie: start it, end it, load it. The rules are in service."""

from __future__ import annotations

import time
from datetime import timedelta

from flask import current_app, session
from flask_login import login_user, logout_user

from ..extensions import db
from . import service

SIGNED_IN_AT = "signed_in_at"
SEEN_AT = "seen_at"
LIFETIME = "lifetime"  # seconds this sign-in may last (user login's session_duration), if set
# Last-seen is written at most this often, so a busy page does not re-sign the cookie on every
# request; the idle timeout is therefore exact to within this many seconds.
SEEN_RESOLUTION = 60
LOGIN_KEYS = ("_user_id", "_fresh", "_id", "_remember_seconds", SIGNED_IN_AT, SEEN_AT, LIFETIME)


def sign_in(user, lifetime: timedelta | None = None) -> None:
    """Start a fresh session for the user (a new session at sign-in defeats fixation).

    Without a `lifetime` the cookie ends with the browser and SESSION_ABSOLUTE_TIMEOUT bounds
    the sign-in; with one (a user login stage's session_duration, "stay signed in") the cookie
    outlives the browser and the sign-in lasts that long instead. The idle timeout and the
    session generation apply either way."""
    session.clear()
    login_user(user)
    now = int(time.time())
    session[SIGNED_IN_AT] = now
    session[SEEN_AT] = now
    if lifetime is not None and lifetime.total_seconds() > 0:
        session[LIFETIME] = int(lifetime.total_seconds())
        session.permanent = True
    service.record_login(user)


def sign_out(user) -> None:
    """End this session and, through the generation, every other copy of it."""
    if user is not None and getattr(user, "is_authenticated", False):
        service.end_sessions(user)
        db.session.commit()
    logout_user()
    session.clear()


def load_signed_in_user(session_id: str):
    """Flask-Login's user_loader: the user of this session, or None when it has ended."""
    user = service.load_user(session_id)
    now = time.time()
    config = current_app.config
    lifetime = session.get(LIFETIME)
    absolute = timedelta(seconds=lifetime) if isinstance(lifetime, int) and lifetime > 0 \
        else config["SESSION_ABSOLUTE_TIMEOUT_DELTA"]
    if user is None or service.session_expired(
        session.get(SIGNED_IN_AT), session.get(SEEN_AT), now,
        idle=config["SESSION_IDLE_TIMEOUT_DELTA"], absolute=absolute,
    ):
        _forget()
        return None
    if now - session[SEEN_AT] >= SEEN_RESOLUTION:
        session[SEEN_AT] = int(now)
    return user


def _forget() -> None:
    """Drop the sign-in from the cookie, keeping the rest (an invitee's flow, the CSRF token)."""
    for key in LOGIN_KEYS:
        session.pop(key, None)
