"""Tokens for links: 256 bits from `secrets`, stored only as digests.

Invitation tokens are derived (HMAC keyed by SECRET_KEY over a random salt) so the admin can
show a link again; the database holds the salt and the digest, neither of which opens anything.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from flask import current_app

SALT_BYTES = 32


def new_salt() -> str:
    return secrets.token_hex(SALT_BYTES)


def new_token() -> str:
    """A random one-time token (256 bits) for links that are never shown twice."""
    return secrets.token_urlsafe(32)


def digest(token: str) -> str:
    """The searchable digest of a high-entropy token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _key(purpose: str) -> bytes:
    secret = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret, f"portal-token-key:{purpose}".encode(), hashlib.sha256).digest()


def derive_token(purpose: str, salt: str) -> str:
    mac = hmac.new(_key(purpose), bytes.fromhex(salt), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def keyed_digest(purpose: str, value: str) -> str:
    """HMAC-SHA256 of `value` under the key for `purpose`: a digest that a copy of the database
    alone cannot test guesses against (single-use codes are looked up by it)."""
    return hmac.new(_key(purpose), value.encode(), hashlib.sha256).hexdigest()
