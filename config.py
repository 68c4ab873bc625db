"""Settings: plain defaults in classes, the operator's environment applied on top.

Tests must never see the operator's shell (a BASE_URL or MAIL_SERVER exported there would leak
into every test), so the classes hold plain values and `load` applies the environment only to a
development or production app.

Adding a setting: one line in `Config` (or a subclass) with its plain default; annotate it
`Env[str]` / `Env[int]` / `Env[bool]` / `Env[str | None]` when the operator may set it by the
environment variable of the same name (parsed to that type). An ISO-8601 duration also goes in
DURATIONS, which checks it at start and adds NAME_DELTA. Checks that span settings go in resolve.
"""

from __future__ import annotations

import copy
import os
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

import isodate

BASE_DIR = Path(__file__).resolve().parent


class SettingError(RuntimeError):
    """A setting is missing or malformed: the portal refuses to start, saying which and why."""


class Env:
    """`Env[int]` marks a setting read from the environment variable of its name (not in tests)."""

    def __class_getitem__(cls, kind):
        return Annotated[kind, cls]


class Config:
    """Every setting with its default; production unless a subclass says otherwise."""

    PORTAL_ENV = "production"
    INSTANCE_PATH: Env[str] = str(BASE_DIR / "instance")
    SECRET_KEY: Env[str | None] = None  # None: generated once into INSTANCE_PATH (see resolve)
    DATABASE_URL: Env[str | None] = None  # None: SQLite in INSTANCE_PATH
    SQLALCHEMY_DATABASE_URI: str | None = None  # wins over DATABASE_URL (tests set it)
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}
    # The one source of absolute links (emails, copy buttons, the setup link). Required in
    # production: a link built from the request's Host would let a visitor choose where a
    # victim's emailed token points. Requests for any other host get a 400 (TRUSTED_HOSTS).
    BASE_URL: Env[str] = ""
    # More host names to accept requests for, beyond BASE_URL's (comma- or space-separated);
    # resolve turns it into Flask's TRUSTED_HOSTS list, BASE_URL's host first.
    TRUSTED_HOSTS: Env[str] = ""
    PORT: Env[int] = 5000  # `make run`'s port: development's BASE_URL is http://127.0.0.1:PORT
    INVITATION_EXPIRE_AFTER: Env[str] = "P7D"
    FLOW_SESSION_LIFETIME: Env[str] = "PT12H"
    SETUP_LINK_LIFETIME: Env[str] = "PT24H"
    # A sign-in ends after this long without a request (idle) and this long after signing in
    # (absolute), whatever the browser does with its cookie (ASVS 3.3.1, 3.3.2).
    SESSION_IDLE_TIMEOUT: Env[str] = "PT2H"
    SESSION_ABSOLUTE_TIMEOUT: Env[str] = "P1D"

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE: Env[bool] = False
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    WTF_CSRF_ENABLED = True
    WTF_CSRF_TIME_LIMIT = None  # tied to the session instead, so a slow typist is not refused
    # The largest request body, refused (the friendly 413 page) before it is read: room for a
    # page of file prompts (each at most 5 MB, flows.prompts.FILE_MAX_SIZE_LIMIT) and far above
    # a blueprint (256 kB).
    MAX_CONTENT_LENGTH: Env[int] = 16 * 1024 * 1024
    # The largest bulk-invite CSV, pasted or uploaded (bytes of UTF-8). The one number for it:
    # the form, the upload check and Werkzeug's MAX_FORM_MEMORY_SIZE (which caps each text part
    # of a multipart form, the paste among them) are all derived from it in resolve.
    BULK_INVITE_MAX_BYTES: Env[int] = 2 * 1024 * 1024

    MAIL_SERVER: Env[str] = ""
    MAIL_PORT: Env[int] = 25
    MAIL_USE_TLS: Env[bool] = False
    MAIL_USE_SSL: Env[bool] = False
    MAIL_USERNAME: Env[str | None] = None
    MAIL_PASSWORD: Env[str | None] = None
    MAIL_DEFAULT_SENDER: Env[str] = "portal@localhost"
    MAIL_TIMEOUT: Env[int] = 30
    # SSO (OpenID Connect sources): TLS to providers is always verified. A provider whose
    # certificate comes from a private CA: the path of a PEM bundle holding that CA.
    OIDC_CA_BUNDLE: Env[str | None] = None
    SSO_ATTEMPT_LIFETIME: Env[int] = 600  # seconds a trip to the provider may take
    SITE_NAME: Env[str] = "Invitation portal"
    # The outbox: try delivery right after the admin's response; retry with backoff.
    OUTBOX_DELIVER_AFTER_RESPONSE: Env[bool] = True
    OUTBOX_AFTER_RESPONSE_LIMIT: Env[int] = 50
    OUTBOX_MAX_ATTEMPTS: Env[int] = 8
    OUTBOX_RETRY_BASE_SECONDS: Env[int] = 30
    OUTBOX_RETRY_MAX_SECONDS: Env[int] = 3600
    OUTBOX_LEASE_SECONDS: Env[int] = 300

    # TOTP authenticators: authentik's defaults, which every authenticator app understands.
    # A device keeps the values it was enrolled with; the issuer shown in the app is SITE_NAME.
    MFA_TOTP_DIGITS = 6
    MFA_TOTP_PERIOD = 30
    MFA_TOTP_ALGORITHM = "sha1"
    MFA_RECOVERY_CODE_COUNT = 10

    # Seconds an invitee waits before asking for another verification email.
    EMAIL_RESEND_MIN_INTERVAL: Env[int] = 60

    # Behind nginx (or any proxy), how many proxies to trust for X-Forwarded-For/-Proto/-Host.
    TRUSTED_PROXIES: Env[int] = 0

    # Rate limits. memory:// counts per worker process; with several workers use Redis
    # (redis://host:6379/0) so every worker sees the same counts.
    RATELIMIT_STORAGE_URI: Env[str] = "memory://"
    RATELIMIT_ENABLED: Env[bool] = True
    # Flask-Limiter's X-RateLimit-* headers on every limited response cost a storage read each
    # (a Redis round trip): the portal adds them to API responses only, and Retry-After to a 429
    # (portal.ratelimits.headers).
    RATELIMIT_HEADERS_ENABLED = False
    RATELIMIT_SWALLOW_ERRORS: Env[bool] = True  # Redis down: serve anyway
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_KEY_PREFIX: Env[str] = "portal"
    # Failed sign-ins only: per (account, address) so a stranger cannot lock a user out, and
    # per address to slow one machine guessing many accounts.
    RATELIMIT_SIGNIN_ACCOUNT: Env[str] = "5 per 5 minutes"
    RATELIMIT_SIGNIN_ADDRESS: Env[str] = "30 per 15 minutes"
    RATELIMIT_INVITATION_LOOKUP: Env[str] = "60 per minute"
    RATELIMIT_WIZARD_SUBMIT: Env[str] = "30 per minute"
    RATELIMIT_EMAIL_RESEND: Env[str] = "3 per 10 minutes; 10 per day"
    # Wrong codes at an authenticator validate stage, per (account, address); counted by the
    # stage itself (portal.ratelimits.second_factor_allowed), not by a route.
    RATELIMIT_MFA_VERIFY: Env[str] = "5 per 5 minutes; 20 per hour"
    # Every /api/v1 request, counted per API token (per address without one).
    RATELIMIT_API: Env[str] = "300 per minute"


class DevelopmentConfig(Config):
    """`make run`: links point at the local server, which also answers to localhost."""

    PORTAL_ENV = "development"
    TRUSTED_HOSTS: Env[str] = "localhost"


class ProductionConfig(Config):
    pass


class TestingConfig(Config):
    """Never reads the environment: tests pass what they need in create_app({...})."""

    PORTAL_ENV = "testing"
    TESTING = True
    SECRET_KEY = "test-secret-key-not-for-production"
    SERVER_NAME = "portal.test"
    BASE_URL = "http://portal.test"
    RATELIMIT_ENABLED = False


CONFIGS = {"development": DevelopmentConfig, "production": ProductionConfig}
DURATIONS = ("INVITATION_EXPIRE_AFTER", "FLOW_SESSION_LIFETIME", "SETUP_LINK_LIFETIME",
             "SESSION_IDLE_TIMEOUT", "SESSION_ABSOLUTE_TIMEOUT")


def load(test_config: Mapping[str, Any] | None = None,
         environ: Mapping[str, str] = os.environ) -> dict:
    """The settings of one app: TestingConfig plus test_config (the environment ignored), or
    PORTAL_ENV's class (production by default) with the environment applied; then resolved."""
    if test_config is not None:
        config = defaults(TestingConfig)
        config.update(test_config)
    else:
        name = environ.get("PORTAL_ENV", "production")
        if name not in CONFIGS:
            raise SettingError(f"PORTAL_ENV={name!r}: use one of {', '.join(CONFIGS)}")
        config = defaults(CONFIGS[name])
        config.update(from_environment(CONFIGS[name], environ))
    return resolve(config)


def defaults(cls: type[Config]) -> dict:
    """The class's settings as a fresh dict (copies: apps in one process must not share a dict)."""
    return {name: copy.deepcopy(getattr(cls, name)) for name in dir(cls) if name.isupper()}


def environment_settings(cls: type[Config] = Config) -> dict[str, type]:
    """The settings marked Env[...], with the type each is parsed to."""
    found = {}
    for name, hint in get_type_hints(cls, include_extras=True).items():
        if get_origin(hint) is Annotated and Env in hint.__metadata__:
            found[name] = get_args(hint)[0]
    return found


def from_environment(cls: type[Config], environ: Mapping[str, str]) -> dict:
    """The Env[...] settings the environment sets, parsed; failing loudly on a bad value."""
    return {name: _parse(name, kind, environ[name])
            for name, kind in environment_settings(cls).items() if name in environ}


def _parse(name: str, kind: type, raw: str):
    if kind is bool:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise SettingError(f"{name}={raw!r} is not a whole number") from None
    if kind is str:
        return raw
    return raw or None  # str | None: empty means unset


def resolve(config: dict) -> dict:
    """Check and derive the settings that need it, after defaults and environment are applied."""
    config["BASE_URL"] = base_url_setting(config)
    config["INSTANCE_PATH"] = str(Path(config["INSTANCE_PATH"]).resolve())
    config["TRUSTED_HOSTS"] = trusted_hosts(config["BASE_URL"], config.get("TRUSTED_HOSTS"))
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = _secret_key(Path(config["INSTANCE_PATH"]))
    config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(
        config.get("SQLALCHEMY_DATABASE_URI")
        or config.get("DATABASE_URL")
        or f"sqlite:///{Path(config['INSTANCE_PATH']) / 'portal.db'}"
    )
    config["MAX_FORM_MEMORY_SIZE"] = form_memory_size(config)
    for name in DURATIONS:
        value = config[name]
        config[name + "_DELTA"] = parse_duration(name, value) if isinstance(value, str) else value
    return config


def base_url_setting(config: Mapping[str, Any]) -> str:
    """BASE_URL, checked: development defaults it to the local server; elsewhere it is required."""
    value = (config.get("BASE_URL") or "").strip().rstrip("/")
    if not value and config.get("PORTAL_ENV") == "development":
        value = f"http://127.0.0.1:{config['PORT']}"
    if not value:
        raise SettingError(
            "BASE_URL is not set. In production every emailed link is built from it, never from "
            "the request's Host header: set BASE_URL to the portal's public address (for example "
            "BASE_URL=https://portal.example.com), or PORTAL_ENV=development to try it locally."
        )
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.query or parts.fragment:
        raise SettingError(f"BASE_URL={value!r} must look like https://portal.example.com")
    return value


# Room beside the largest paste in one multipart text part, so a paste a little too large gets
# the form's own error ("larger than 2 MB") rather than the 413 page.
FORM_MEMORY_SLACK = 64 * 1024


def form_memory_size(config: Mapping[str, Any]) -> int:
    """Werkzeug's cap on one text field of a multipart form: just above BULK_INVITE_MAX_BYTES
    (the largest text field the portal takes); never beyond MAX_CONTENT_LENGTH."""
    largest = config["BULK_INVITE_MAX_BYTES"]
    if not isinstance(largest, int) or largest < 1:
        raise SettingError(f"BULK_INVITE_MAX_BYTES={largest!r} must be a positive number of bytes")
    limit = config.get("MAX_CONTENT_LENGTH")
    if limit and largest + FORM_MEMORY_SLACK > limit:
        raise SettingError(f"BULK_INVITE_MAX_BYTES={largest} leaves no room below "
                           f"MAX_CONTENT_LENGTH={limit}: raise MAX_CONTENT_LENGTH or lower it")
    return largest + FORM_MEMORY_SLACK


def trusted_hosts(base_url: str, extra: str | list[str] | None) -> list[str]:
    """The host names requests may carry: BASE_URL's, plus the extra ones (a list or a string)."""
    names = extra.replace(",", " ").split() if isinstance(extra, str) else list(extra or [])
    hosts = [urlsplit(base_url).hostname or ""]
    return hosts + [name.lower() for name in names if name.lower() not in hosts]


def _secret_key(instance: Path) -> str:
    """The key generated once into instance/, so restarts keep sessions and links valid."""
    path = instance / "secret_key"
    if not path.exists():
        # Several workers may start at once: write a private file whole, then link it into
        # place; link fails if another process won, and everyone reads the winner's key.
        instance.mkdir(parents=True, exist_ok=True)
        draft = instance / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


def parse_duration(name: str, raw: str) -> timedelta:
    """Parse an ISO-8601 duration setting, failing loudly at start-up rather than at use."""
    try:
        value = isodate.parse_duration(raw)
    except (isodate.ISO8601Error, ValueError) as exc:
        raise SettingError(f"{name}={raw!r} is not an ISO-8601 duration such as P7D") from exc
    if hasattr(value, "totimedelta"):  # years/months: measure from now
        value = value.totimedelta(start=datetime.now(UTC))
    if value <= timedelta(0):
        raise SettingError(f"{name}={raw!r} must be a positive duration")
    return value


def normalise_database_url(url: str) -> str:
    """postgres:// and a bare postgresql:// both mean psycopg 3 here."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix):]
    return url
