"""Rate limits for the endpoints a stranger can hammer. Limits are config keys (RATELIMIT_*).

Counts live in RATELIMIT_STORAGE_URI: memory:// counts per process, so with several gunicorn
workers point it at Redis for one shared count.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import current_app, request
from flask_limiter.util import get_remote_address

from .extensions import limiter


def headers(*, remaining: bool) -> dict[str, str]:
    """The breached (or, for `remaining`, the tightest) limit of this request as headers:
    Retry-After for a 429, and the X-RateLimit-* figures scripts pace themselves by (API
    responses). Empty when no limit applied, or when the storage cannot say."""
    try:
        limit = limiter.current_limit
        if limit is None:
            return {}
        reset_at = limit.reset_at
        found = {"Retry-After": str(max(1, int(reset_at - time.time())))}
        if remaining:
            found = {"X-RateLimit-Limit": str(limit.limit.amount),
                     "X-RateLimit-Remaining": str(limit.remaining),
                     "X-RateLimit-Reset": str(reset_at)}
    except Exception:  # noqa: BLE001 (storage down: the limits are swallowed, so are these)
        return {}
    return found


def add_api_headers(response):
    """after_request of the API's blueprints: the X-RateLimit-* figures of the token's budget."""
    if response.status_code != 429:
        response.headers.update(headers(remaining=True))
    return response


def _setting(name: str) -> Callable[[], str]:
    return lambda: current_app.config[name]


def _failed(response) -> bool:
    """A password check failed when a page came back (the form again, or the flow cancelled)
    instead of a redirect onwards."""
    return not 300 <= response.status_code < 400


def sign_in(*, identifier: Callable[[], str], applies: Callable[[], bool]):
    """The sign-in rule: failed password checks are limited per (account, address) and per
    address; successful ones never count. Per (account, address): guesses at one account from
    one machine are slowed, while the account's owner, from any other address, can still sign
    in, so a stranger cannot lock them out. The account is the one the identifier names
    (auth.service.sign_in_budget_key), so its username and its email address draw on one budget.

    `identifier()` is what the person typed to say who they are; `applies()` says whether this
    request checks a password (the flow route: a POST to a password-checking stage)."""
    from .auth.service import sign_in_budget_key

    def account_and_address() -> str:
        return f"{get_remote_address()}/{sign_in_budget_key(identifier() or '')}"

    per_account = limiter.shared_limit(
        _setting("RATELIMIT_SIGNIN_ACCOUNT"), scope="sign-in-account",
        key_func=account_and_address, methods=["POST"], deduct_when=_failed,
        exempt_when=lambda: not applies(),
    )
    per_address = limiter.shared_limit(
        _setting("RATELIMIT_SIGNIN_ADDRESS"), scope="sign-in-address", methods=["POST"],
        deduct_when=_failed, exempt_when=lambda: not applies(),
    )
    return lambda view: per_account(per_address(view))


invitation_lookup = limiter.shared_limit(
    _setting("RATELIMIT_INVITATION_LOOKUP"), scope="invitation-lookup", methods=["GET"],
    exempt_when=lambda: "itoken" not in request.args,
)
def wizard_submit(exempt_when: Callable[[], bool] | None = None):
    """Every flow page's POST; sign-in attempts are exempt (the sign-in limits count them)."""
    return limiter.shared_limit(
        _setting("RATELIMIT_WIZARD_SUBMIT"), scope="wizard-submit", methods=["POST"],
        exempt_when=exempt_when,
    )


def email_resend(exempt_when: Callable[[], bool] | None = None):
    """For every "send the email again" endpoint; pass exempt_when to spare e.g. admins."""
    return limiter.shared_limit(
        _setting("RATELIMIT_EMAIL_RESEND"), scope="email-resend", methods=["POST"],
        exempt_when=exempt_when,
    )


# -- limits a stage applies itself ---------------------------------------------------------------
# A stage knows no HTTP, so these are not decorators: the stage asks before it checks a code and
# counts a failure after, with the same storage and key prefix as the limits above.


def _second_factor_key(user_id: int, address: str | None) -> tuple[str, str]:
    """Per (account, address), like failed sign-ins: a stranger guessing codes is slowed, and
    cannot lock the owner out from the owner's own machine."""
    return "second-factor", f"{address or '-'}/{user_id}"


def _second_factor_limits():
    from limits import parse_many

    return parse_many(current_app.config["RATELIMIT_MFA_VERIFY"])


def second_factor_allowed(user_id: int, address: str | None) -> bool:
    """May this account be sent another code from this address (wrong codes so far within the
    limit RATELIMIT_MFA_VERIFY)? Storage errors allow, as RATELIMIT_SWALLOW_ERRORS does."""
    if not current_app.config["RATELIMIT_ENABLED"]:
        return True
    try:
        return all(limiter.limiter.test(item, *_second_factor_key(user_id, address))
                   for item in _second_factor_limits())
    except Exception:  # noqa: BLE001 - a rate limiter that is down must not block sign-in
        current_app.logger.exception("second-factor rate limit unavailable")
        return True


def second_factor_failed(user_id: int, address: str | None) -> None:
    """Count one wrong second-factor code (successful ones never count)."""
    if not current_app.config["RATELIMIT_ENABLED"]:
        return
    try:
        for item in _second_factor_limits():
            limiter.limiter.hit(item, *_second_factor_key(user_id, address))
    except Exception:  # noqa: BLE001
        current_app.logger.exception("second-factor rate limit unavailable")
