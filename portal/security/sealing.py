"""Encryption at rest for values the portal must read back (outbox bodies, TOTP secrets).

One mechanism: Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) under a key derived from
SECRET_KEY with HMAC-SHA256 over a label naming the purpose. Each purpose has its own label, so
its own key: a value sealed for one purpose does not open as another. A copy of the database
alone opens nothing; changing SECRET_KEY makes every sealed value unreadable (SealError).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from cryptography.fernet import Fernet


class SealError(Exception):
    """A sealed value cannot be opened: SECRET_KEY changed, or it was sealed for another purpose."""


def _fernet(label: bytes) -> Fernet:
    from cryptography.fernet import Fernet  # imported on first use: ~8 MiB a worker may not need

    secret = current_app.config["SECRET_KEY"].encode()
    key = hmac.new(secret, label, hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def seal(label: bytes, text: str) -> str:
    """Encrypt `text` under the key for `label`; the empty string stays empty."""
    return _fernet(label).encrypt(text.encode()).decode() if text else ""


def unseal(label: bytes, sealed: str) -> str:
    """Decrypt what `seal(label, ...)` made; raises SealError if it cannot."""
    from cryptography.fernet import InvalidToken

    if not sealed:
        return ""
    try:
        return _fernet(label).decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise SealError("a sealed value cannot be decrypted (was SECRET_KEY changed?)") from None
