"""Enqueue emails with the business change; deliver them later with retry and backoff.

Delivery claims one row at a time with a guarded UPDATE (status still queued and nobody's lease
running), which the database lets exactly one sender win, on SQLite and PostgreSQL alike. The
winner holds a lease (`claimed_until`) while it talks to the mail server; if it dies mid-send the
lease runs out and another sender retries the row.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import smtplib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from flask import current_app
from flask_mail import Connection, Message
from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import OperationalError

from ..extensions import db
from ..models import Invitation, OutboxMessage, OutboxStatus, utcnow
from ..security import sealing

log = logging.getLogger(__name__)


def mail_configured() -> bool:
    """Whether a mail server is set; without one the admin shares links by hand."""
    return bool(current_app.config.get("MAIL_SERVER"))


# The label keeps the key that bodies queued before the sealing module existed were sealed with.
BODY_SEAL = b"portal-outbox-bodies"


def _seal(text: str) -> str:
    return sealing.seal(BODY_SEAL, text)


def _open(sealed: str) -> str:
    try:
        return sealing.unseal(BODY_SEAL, sealed)
    except sealing.SealError:
        raise DeliveryError("the message cannot be decrypted (was SECRET_KEY changed?)") from None


def compose(to: str | Iterable[str], subject: str, text: str, html: str = "", *,
            cc: Iterable[str] = (), bcc: Iterable[str] = (),
            invitation: Invitation | None = None, sender: str | None = None) -> OutboxMessage:
    """The outbox row for one email, bodies sealed, not yet added to the session."""
    return OutboxMessage(
        to=[to] if isinstance(to, str) else list(to), cc=list(cc), bcc=list(bcc),
        subject=subject[:500], body_text=_seal(text), body_html=_seal(html),
        invitation=invitation, sender=sender, status=OutboxStatus.QUEUED,
        next_attempt_at=utcnow(), attempts=0, last_error="",
    )


def enqueue(to: str | Iterable[str], subject: str, text: str, html: str = "", *,
            cc: Iterable[str] = (), bcc: Iterable[str] = (),
            invitation: Invitation | None = None, sender: str | None = None) -> OutboxMessage:
    """Put one email in the outbox, in the caller's transaction (the caller commits).

    Nothing is sent here: a sender delivers it after the response (see
    `portal.mail.web.deliver_after_response`) or from `flask --app wsgi outbox send` / `outbox run`.
    """
    message = compose(to, subject, text, html, cc=cc, bcc=bcc, invitation=invitation,
                      sender=sender)
    if not message.to:
        raise ValueError("an email needs at least one recipient")
    db.session.add(message)
    return message


class DeliveryError(Exception):
    """A message could not be handed to the mail server."""


@dataclass
class Report:
    sent: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{len(self.sent)} sent, {len(self.retrying)} to retry, {len(self.failed)} failed"


class _TimedConnection(Connection):
    """Flask-Mail's connection, with a socket timeout so a hung server cannot hold a sender."""

    def configure_host(self):
        timeout = current_app.config.get("MAIL_TIMEOUT", 30)
        cls = smtplib.SMTP_SSL if self.mail.use_ssl else smtplib.SMTP
        host = cls(self.mail.server, self.mail.port, timeout=timeout)
        if self.mail.use_tls:
            host.starttls()
        if self.mail.username and self.mail.password:
            host.login(self.mail.username, self.mail.password)
        return host


def backoff(attempts: int) -> timedelta:
    """Wait before the next try: base * 2^(attempts-1), capped."""
    base = current_app.config.get("OUTBOX_RETRY_BASE_SECONDS", 30)
    cap = current_app.config.get("OUTBOX_RETRY_MAX_SECONDS", 3600)
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))


def _candidates(limit: int, ids: Iterable[int] | None, due_only: bool) -> list[int]:
    now = utcnow()
    query = select(OutboxMessage.id).where(
        OutboxMessage.status == OutboxStatus.QUEUED,
        or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
    ).order_by(OutboxMessage.id).limit(limit)
    if due_only:
        query = query.where(OutboxMessage.next_attempt_at <= now)
    if ids is not None:
        query = query.where(OutboxMessage.id.in_(list(ids)))
    result = list(db.session.scalars(query))
    db.session.commit()  # hold no read snapshot while claiming (SQLite would refuse the upgrade)
    return result


def _claim(message_id: int, claim: str) -> bool:
    now = utcnow()
    lease = timedelta(seconds=current_app.config.get("OUTBOX_LEASE_SECONDS", 300))
    for _ in range(5):
        try:
            won = db.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message_id,
                       OutboxMessage.status == OutboxStatus.QUEUED,
                       or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now))
                .values(claimed_until=now + lease, claim_token=claim,
                        attempts=OutboxMessage.attempts + 1)
                .execution_options(synchronize_session=False)
            ).rowcount == 1
            db.session.commit()
            return won
        except OperationalError:  # SQLite busy beyond its timeout: try again shortly
            db.session.rollback()
            time.sleep(0.05)
    return False


def _to_flask_message(row: OutboxMessage) -> Message:
    return Message(
        subject=row.subject, recipients=list(row.to), cc=list(row.cc or []),
        bcc=list(row.bcc or []), body=_open(row.body_text), html=_open(row.body_html) or None,
        sender=row.sender or current_app.config["MAIL_DEFAULT_SENDER"],
    )


def deliver(*, ids: Iterable[int] | None = None, limit: int = 100, due_only: bool = True) -> Report:
    """Send queued messages this sender can claim; never raises for a mail-server problem."""
    from ..audit import Action, record_event

    report = Report()
    if not mail_configured():
        return report
    claim = secrets.token_hex(16)
    connection: Connection | None = None
    try:
        for message_id in _candidates(limit, ids, due_only):
            if not _claim(message_id, claim):
                continue  # another sender has it
            row = db.session.get(OutboxMessage, message_id, populate_existing=True)
            try:
                if connection is None:
                    connection = _TimedConnection(current_app.extensions["mail"]).__enter__()
                connection.send(_to_flask_message(row))
            except (OSError, smtplib.SMTPException, DeliveryError) as exc:
                if connection is not None:
                    _close(connection)
                    connection = None
                _record_failure(row, exc, report)
                continue
            row.status = OutboxStatus.SENT
            row.sent_at = utcnow()
            row.claimed_until = None
            row.last_error = ""
            record_event(Action.INVITATION_SENT if row.invitation_id else Action.EMAIL_SENT,
                         obj=row.invitation or row, detail={"to": row.to, "attempts": row.attempts})
            db.session.commit()
            report.sent.append(row.id)
    finally:
        if connection is not None:
            _close(connection)
    return report


def _close(connection: Connection) -> None:
    with contextlib.suppress(OSError, smtplib.SMTPException):
        connection.__exit__(None, None, None)


def _record_failure(row: OutboxMessage, exc: Exception, report: Report) -> None:
    from ..audit import Action, record_event

    error = f"{type(exc).__name__}: {exc}"[:1000]
    row.last_error = error
    row.claimed_until = None
    if row.attempts >= current_app.config.get("OUTBOX_MAX_ATTEMPTS", 8):
        row.status = OutboxStatus.FAILED
        report.failed.append(row.id)
    else:
        row.next_attempt_at = utcnow() + backoff(row.attempts)
        report.retrying.append(row.id)
    record_event(Action.INVITATION_SEND_FAILED if row.invitation_id else Action.EMAIL_SEND_FAILED,
                 obj=row.invitation or row,
                 detail={"to": row.to, "attempts": row.attempts, "error": error,
                         "final": row.status == OutboxStatus.FAILED})
    db.session.commit()
    log.warning("email %s not delivered (attempt %s): %s", row.id, row.attempts, error)


def cancel_queued(invitation_ids: Iterable[int]) -> int:
    """Withdraw the queued emails of these invitations (their links no longer work).

    A message a sender holds right now cannot be withdrawn; everything else is, in the
    caller's transaction.
    """
    now = utcnow()
    return db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.invitation_id.in_(list(invitation_ids)),
               OutboxMessage.status == OutboxStatus.QUEUED,
               or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now))
        .values(status=OutboxStatus.CANCELLED, last_error="cancelled: the link was withdrawn")
        .execution_options(synchronize_session=False)
    ).rowcount


def retry(message: OutboxMessage) -> bool:
    """Put a failed message back in the queue now (the admin's "retry"), in the caller's
    transaction. Only a FAILED message: the guarded UPDATE lets a sent, cancelled or still
    queued one (perhaps held by a sender right now) never go out twice. Returns whether it did."""
    retried = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message.id, OutboxMessage.status == OutboxStatus.FAILED)
        .values(status=OutboxStatus.QUEUED, next_attempt_at=utcnow(), claimed_until=None)
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    if retried:
        db.session.expire(message, ["status", "next_attempt_at", "claimed_until"])
    return retried


def purge(older_than: timedelta) -> int:
    """Delete sent and failed messages created before now - older_than."""
    cutoff = utcnow() - older_than
    result = db.session.execute(
        delete(OutboxMessage).where(OutboxMessage.status != OutboxStatus.QUEUED,
                                    OutboxMessage.created_at < cutoff)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount


def run_forever(interval: float = 5.0, *, stop=lambda: False) -> None:
    """The production sender: deliver what is due, sleep, repeat."""
    while not stop():
        try:
            report = deliver()
            if report.sent or report.retrying or report.failed:
                log.info("outbox: %s", report)
        except Exception:  # keep the loop alive through database hiccups
            log.exception("outbox sender error")
            db.session.rollback()
        db.session.remove()
        time.sleep(interval)
