"""Security headers on every response, and a session cookie that is Secure over HTTPS.

flask-talisman was considered: it cannot set Referrer-Policy per view and trusts
X-Forwarded-Proto from anyone; here the proxy is trusted only through ProxyFix.
"""

from __future__ import annotations

from flask import Flask, current_app, g, has_request_context, request
from flask.sessions import SecureCookieSessionInterface

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",          # no inline script, no eval
    "style-src 'self'",           # no inline <style> or style="" either
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
DEFAULT_REFERRER_POLICY = "same-origin"
HSTS = "max-age=31536000; includeSubDomains"
TOKEN_ARGS = ("itoken", "token")


def no_referrer(view):
    """Mark a view whose URL carries a secret: the browser must not pass it on as a Referer."""
    view.no_referrer = True
    return view


def _carries_token() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, "no_referrer", False) or any(arg in request.args for arg in TOKEN_ARGS)


def allow_form_action(origin: str) -> None:
    """This response's forms may lead to `origin` too: a "Sign in with <source>" button POSTs
    here and is redirected to the provider, and form-action covers the redirect."""
    origins = g.setdefault("form_action_origins", [])
    if origin not in origins:
        origins.append(origin)


def _policy() -> str:
    extra = g.get("form_action_origins") if has_request_context() else None
    if not extra:
        return CONTENT_SECURITY_POLICY
    return CONTENT_SECURITY_POLICY.replace("form-action 'self'",
                                           "form-action 'self' " + " ".join(extra))


def set_security_headers(response):
    headers = response.headers
    headers.setdefault("Content-Security-Policy", _policy())
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
    if _carries_token():
        headers["Referrer-Policy"] = "no-referrer"
        headers["Cache-Control"] = "no-store"
    else:
        headers.setdefault("Referrer-Policy", DEFAULT_REFERRER_POLICY)
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", HSTS)
    return response


class SessionInterface(SecureCookieSessionInterface):
    """The session cookie is Secure when configured so, or whenever the request came over HTTPS
    (directly, or through a trusted proxy's X-Forwarded-Proto via ProxyFix)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or (has_request_context() and request.is_secure)

    def get_signing_serializer(self, app: Flask):
        """Flask builds the cookie's serializer twice per request (to read, to write); it only
        depends on the keys, so it is built once per set of keys (a changed SECRET_KEY or
        SECRET_KEY_FALLBACKS builds a new one). About a tenth of an invitation link's time."""
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        cached = app.extensions.get("session_serializer")
        if cached is None or cached[0] != keys:
            cached = (keys, super().get_signing_serializer(app))
            app.extensions["session_serializer"] = cached
        return cached[1]


def init_app(app: Flask) -> None:
    app.session_interface = SessionInterface()
    app.after_request(set_security_headers)
