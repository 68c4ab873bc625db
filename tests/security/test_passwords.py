"""portal.security.passwords: the common-password list, read without zxcvbn's dictionaries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from portal.security import passwords


def test_the_common_passwords_are_zxcvbns_whole_list():
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    assert passwords._common_passwords() == frozenset(FREQUENCY_LISTS["passwords"])
    assert len(passwords._common_passwords()) == 30_000
    assert "pic's" in passwords._common_passwords()  # an escaped quote in zxcvbn's source
    assert passwords.password_problems("Dragon") == [
        "Use at least 8 characters.",
        "This password is too common; choose one that is harder to guess."]
    assert passwords.password_problems("football1") == [
        "This password is too common; choose one that is harder to guess."]


def test_checking_a_password_leaves_zxcvbn_unimported():
    """Importing zxcvbn builds ranked dictionaries of all its lists: about 11 MiB kept by every
    worker that checks one password (issue 10's steady memory)."""
    script = ("import sys; from portal.security.passwords import password_problems; "
              "password_problems('a-long-and-unusual-passphrase'); "
              "print(sorted(m for m in sys.modules if m.startswith('zxcvbn')))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,  # noqa: S603
                         check=True, cwd=Path(__file__).parents[2])
    assert out.stdout.strip() == "[]"
