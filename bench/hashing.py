"""The argon2 bound's worker: hash with the portal's own hasher for a while (a module of its
own so that spawned processes can import it)."""

from __future__ import annotations

import time

PASSWORD = "a-long-and-unusual-passphrase"  # noqa: S105


def hash_for(seconds: float, queue) -> None:
    """Put how many hashes this process made in `seconds` on the queue."""
    from portal.security.passwords import hash_password

    hash_password(PASSWORD)  # warm: the first call pays for imports and allocations
    done, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        hash_password(PASSWORD)
        done += 1
    queue.put(done)
