"""Email through a durable outbox.

`enqueue(...)` writes a message in the caller's transaction; `deliver(...)` sends what it can
claim. Other features (email verification, set-password links) call `enqueue` and commit.
"""

from .outbox import (
    Report,
    backoff,
    cancel_queued,
    compose,
    deliver,
    enqueue,
    mail_configured,
    retry,
    run_forever,
)

__all__ = ["Report", "backoff", "cancel_queued", "compose", "deliver", "enqueue", "mail_configured",
           "retry", "run_forever"]
