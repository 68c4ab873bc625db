"""Rate limits for the endpoints a stranger can hammer. Limits are config keys (RATELIMIT_*).

Counts live in RATELIMIT_STORAGE_URI: memory:// counts per process, so with several gunicorn
workers point it at Redis for one shared count.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import current_app, request
from flask_limiter.util import get_remote_address

from .extensions import limiter


def _setting(name: str) -> Callable[[], str]:
    return lambda: current_app.config[name]


def _failed(response) -> bool:
    """A sign-in failed when the form came back instead of a redirect to the account."""
    return not 300 <= response.status_code < 400


def _account_and_address() -> str:
    """Per (account, address): guesses at one account from one machine are slowed, while the
    account's owner, from any other address, can still sign in. The account is the one the
    identifier names, so its username and its email address draw on one budget."""
    from .auth.service import sign_in_budget_key

    return f"{get_remote_address()}/{sign_in_budget_key(request.form.get('login') or '')}"


sign_in_account = limiter.shared_limit(
    _setting("RATELIMIT_SIGNIN_ACCOUNT"), scope="sign-in-account", key_func=_account_and_address,
    methods=["POST"], deduct_when=_failed,
)
sign_in_address = limiter.shared_limit(
    _setting("RATELIMIT_SIGNIN_ADDRESS"), scope="sign-in-address", methods=["POST"],
    deduct_when=_failed,
)


def sign_in(view):
    """Failed sign-ins, per (account, address) and per address; successful ones never count."""
    return sign_in_account(sign_in_address(view))


invitation_lookup = limiter.shared_limit(
    _setting("RATELIMIT_INVITATION_LOOKUP"), scope="invitation-lookup", methods=["GET"],
    exempt_when=lambda: "itoken" not in request.args,
)
wizard_submit = limiter.shared_limit(
    _setting("RATELIMIT_WIZARD_SUBMIT"), scope="wizard-submit", methods=["POST"],
)


def email_resend(exempt_when: Callable[[], bool] | None = None):
    """For every "send the email again" endpoint; pass exempt_when to spare e.g. admins."""
    return limiter.shared_limit(
        _setting("RATELIMIT_EMAIL_RESEND"), scope="email-resend", methods=["POST"],
        exempt_when=exempt_when,
    )
