"""argon2id hashing and the password policy shared by every place that sets a password."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 8
MAX_LENGTH = 128  # ASVS 2.1.2 asks that at least 64 be allowed

_hasher = PasswordHasher()  # argon2id with the library's RFC 9106 parameters
# Verified when the account does not exist, so timing does not reveal which usernames exist.
_DUMMY_HASH = _hasher.hash("timing-equaliser-not-a-password")


def _normalise(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def hash_password(password: str) -> str:
    return _hasher.hash(_normalise(password))


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password; takes the same time whether or not there is a hash to check."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, _normalise(password)) and bool(
            password_hash
        )
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


_PASSWORDS_LINE = '    "passwords": "'


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    """The 30,000 most common passwords, from zxcvbn's frequency lists.

    Read as text from the one line of zxcvbn/frequency_lists.py that holds them: importing the
    package builds ranked dictionaries of all its lists (about 11 MiB kept by every worker that
    checks one password), of which only this list is used. Any other layout: the import."""
    import ast
    from importlib.util import find_spec
    from pathlib import Path

    spec = find_spec("zxcvbn")
    source = Path(next(iter(spec.submodule_search_locations or ())), "frequency_lists.py")
    with open(source, encoding="utf-8") as lines:
        for line in lines:
            if line.startswith(_PASSWORDS_LINE) and line.rstrip().endswith('".split(","),'):
                literal = line.rstrip()[len(_PASSWORDS_LINE) - 1:-len('.split(","),')]
                return frozenset(ast.literal_eval(literal).split(","))  # its escapes, too
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def password_problems(password: str, *, username: str = "", email: str = "") -> list[str]:
    """Why a password is refused; an empty list means it is acceptable."""
    password = _normalise(password or "")
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"Use at least {MIN_LENGTH} characters.")
    elif len(password) > MAX_LENGTH:
        problems.append(f"Use at most {MAX_LENGTH} characters.")
    lowered = password.lower()
    if lowered in _common_passwords():
        problems.append("This password is too common; choose one that is harder to guess.")
    elif lowered and lowered in {username.lower(), email.lower(), email.lower().split("@")[0]}:
        problems.append("Your password must not be your username or email address.")
    return problems
