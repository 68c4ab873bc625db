"""Settings, read from the environment so one build runs anywhere."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import isodate

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = Path(os.environ.get("INSTANCE_PATH", BASE_DIR / "instance"))


def _secret_key() -> str:
    """Return SECRET_KEY, generating one in instance/ so restarts keep sessions and links valid."""
    key = os.environ.get("SECRET_KEY")
    if key:
        return key
    path = INSTANCE_DIR / "secret_key"
    if not path.exists():
        # Several workers may start at once: write a private file whole, then link it into
        # place; link fails if another process won, and everyone reads the winner's key.
        INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
        draft = INSTANCE_DIR / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
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
        raise RuntimeError(f"{name}={raw!r} is not an ISO-8601 duration such as P7D") from exc
    if hasattr(value, "totimedelta"):  # years/months: measure from now
        value = value.totimedelta(start=datetime.now(UTC))
    if value <= timedelta(0):
        raise RuntimeError(f"{name}={raw!r} must be a positive duration")
    return value


def normalise_database_url(url: str) -> str:
    """postgres:// and a bare postgresql:// both mean psycopg 3 here."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix):]
    return url


def _bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


class Config:
    SECRET_KEY = None  # resolved lazily in create_app so tests never touch instance/
    SQLALCHEMY_DATABASE_URI = None
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}
    BASE_URL = os.environ.get("BASE_URL", "").rstrip("/")
    INVITATION_EXPIRE_AFTER = os.environ.get("INVITATION_EXPIRE_AFTER", "P7D")
    FLOW_SESSION_LIFETIME = os.environ.get("FLOW_SESSION_LIFETIME", "PT12H")
    SETUP_LINK_LIFETIME = os.environ.get("SETUP_LINK_LIFETIME", "PT24H")

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE")
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    WTF_CSRF_ENABLED = True
    WTF_CSRF_TIME_LIMIT = None  # tied to the session instead, so a slow typist is not refused
    # The largest request body, refused (the friendly 413 page) before it is read: room for a
    # page of file prompts (each at most 5 MB, flows.prompts.FILE_MAX_SIZE_LIMIT) and far above
    # a blueprint (256 kB). Werkzeug's MAX_FORM_MEMORY_SIZE still caps each text field.
    MAX_CONTENT_LENGTH = int(os.environ.get("MAX_CONTENT_LENGTH", str(16 * 1024 * 1024)))

    MAIL_SERVER = os.environ.get("MAIL_SERVER", "")
    MAIL_PORT = int(os.environ.get("MAIL_PORT", "25"))
    MAIL_USE_TLS = _bool("MAIL_USE_TLS")
    MAIL_USE_SSL = _bool("MAIL_USE_SSL")
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME") or None
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD") or None
    MAIL_DEFAULT_SENDER = os.environ.get("MAIL_DEFAULT_SENDER", "portal@localhost")
    MAIL_TIMEOUT = int(os.environ.get("MAIL_TIMEOUT", "30"))
    SITE_NAME = os.environ.get("SITE_NAME", "Invitation portal")
    # The outbox: try delivery right after the admin's response; retry with backoff.
    OUTBOX_DELIVER_AFTER_RESPONSE = _bool("OUTBOX_DELIVER_AFTER_RESPONSE", True)
    OUTBOX_AFTER_RESPONSE_LIMIT = int(os.environ.get("OUTBOX_AFTER_RESPONSE_LIMIT", "50"))
    OUTBOX_MAX_ATTEMPTS = int(os.environ.get("OUTBOX_MAX_ATTEMPTS", "8"))
    OUTBOX_RETRY_BASE_SECONDS = int(os.environ.get("OUTBOX_RETRY_BASE_SECONDS", "30"))
    OUTBOX_RETRY_MAX_SECONDS = int(os.environ.get("OUTBOX_RETRY_MAX_SECONDS", "3600"))
    OUTBOX_LEASE_SECONDS = int(os.environ.get("OUTBOX_LEASE_SECONDS", "300"))

    # Seconds an invitee waits before asking for another verification email.
    EMAIL_RESEND_MIN_INTERVAL = int(os.environ.get("EMAIL_RESEND_MIN_INTERVAL", "60"))

    # Behind nginx (or any proxy), how many proxies to trust for X-Forwarded-For/-Proto/-Host.
    TRUSTED_PROXIES = int(os.environ.get("TRUSTED_PROXIES", "0"))

    # Rate limits. memory:// counts per worker process; with several workers use Redis
    # (redis://host:6379/0) so every worker sees the same counts.
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "memory://")
    RATELIMIT_ENABLED = _bool("RATELIMIT_ENABLED", True)
    RATELIMIT_HEADERS_ENABLED = True  # Retry-After on a 429
    RATELIMIT_SWALLOW_ERRORS = _bool("RATELIMIT_SWALLOW_ERRORS", True)  # Redis down: serve anyway
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_KEY_PREFIX = os.environ.get("RATELIMIT_KEY_PREFIX", "portal")
    # Failed sign-ins only: per (account, address) so a stranger cannot lock a user out, and
    # per address to slow one machine guessing many accounts.
    RATELIMIT_SIGNIN_ACCOUNT = os.environ.get("RATELIMIT_SIGNIN_ACCOUNT", "5 per 5 minutes")
    RATELIMIT_SIGNIN_ADDRESS = os.environ.get("RATELIMIT_SIGNIN_ADDRESS", "30 per 15 minutes")
    RATELIMIT_INVITATION_LOOKUP = os.environ.get("RATELIMIT_INVITATION_LOOKUP", "60 per minute")
    RATELIMIT_WIZARD_SUBMIT = os.environ.get("RATELIMIT_WIZARD_SUBMIT", "30 per minute")
    RATELIMIT_EMAIL_RESEND = os.environ.get("RATELIMIT_EMAIL_RESEND", "3 per 10 minutes; 10 per day")


class DevelopmentConfig(Config):
    pass


class ProductionConfig(Config):
    pass


class TestingConfig(Config):
    TESTING = True
    SECRET_KEY = "test-secret-key-not-for-production"
    SERVER_NAME = "portal.test"
    RATELIMIT_ENABLED = False


def resolve(config: dict) -> dict:
    """Fill the settings that need I/O or validation, after the class defaults are applied."""
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = _secret_key()
    config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(
        config.get("SQLALCHEMY_DATABASE_URI")
        or os.environ.get("DATABASE_URL")
        or f"sqlite:///{INSTANCE_DIR / 'portal.db'}"
    )
    for name in ("INVITATION_EXPIRE_AFTER", "FLOW_SESSION_LIFETIME", "SETUP_LINK_LIFETIME"):
        value = config[name]
        config[name + "_DELTA"] = parse_duration(name, value) if isinstance(value, str) else value
    return config
