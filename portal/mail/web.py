"""Sending queued mail once a response has gone out: a page never waits for the mail server."""

from __future__ import annotations

from flask import after_this_request, current_app, flash


def deliver_on_close(response, message_ids: list[int]):
    """Try these outbox messages when the response is closed; failures stay queued for the sender."""
    if not message_ids or not current_app.config.get("OUTBOX_DELIVER_AFTER_RESPONSE", True):
        return response
    app = current_app._get_current_object()
    ids = list(message_ids)

    def deliver():
        from .outbox import deliver as deliver_now

        with app.app_context():
            try:
                deliver_now(ids=ids)
            except Exception:  # the sender retries later; never break the response
                app.logger.exception("delivery after response failed")

    response.call_on_close(deliver)
    return response


def deliver_after_response(message_ids: list[int]) -> None:
    """Deliver after this request's response; a big batch is left to `outbox run`."""
    limit = current_app.config.get("OUTBOX_AFTER_RESPONSE_LIMIT", 50)
    if len(message_ids) > limit:
        # A big batch would hold this worker for long: the outbox sender (`outbox run`) has it.
        flash(f"{len(message_ids)} emails are queued; the outbox sender delivers them "
              "(`flask --app wsgi outbox run`).", "info")
        return
    after_this_request(lambda response: deliver_on_close(response, message_ids))
