"""Deliver the outbox over SMTP: at least once, never twice at the same time, and nothing
lost while the server is down.

One run (``deliver_due``) first composes the notifications marked for mail into outbox
messages (compose.py), then works in batches. For each batch it

1. **claims** due messages in one statement and commits the claim::

       WITH due AS MATERIALIZED (
           SELECT id FROM outbox_messages
           WHERE state = 'pending' AND next_attempt_at <= :now
             AND (claimed_until IS NULL OR claimed_until < :now)
           ORDER BY id LIMIT :batch [FOR UPDATE SKIP LOCKED])
       UPDATE outbox_messages SET claimed_until = :token
       WHERE id IN (SELECT id FROM due) AND <the same conditions again>
       RETURNING id

   (PostgreSQL: concurrent runs skip each other's locked rows and re-check the conditions
   on rows committed meanwhile; SQLite: ``BEGIN IMMEDIATE`` serializes the claims). The
   token is ``now + lease`` plus random microseconds, so it also names this run's claim;
2. opens **one** SMTP connection (STARTTLS and login when configured) and sends each
   message with its stored Message-ID, multipart/alternative text + HTML and the ``.ics``;
3. only after the server accepted a message, marks it ``sent`` *if the claim is still
   ours* (``WHERE claimed_until = :token``) and commits, one message at a time.

Failures:

* the server cannot be reached or breaks off (refused, timeout, TLS or login failure,
  disconnect): the batch stops at once (no hammering); this message and the rest of the
  batch get ``attempts + 1`` and the backoff, and stay ``pending`` however long the outage
  lasts (the backoff is capped): nothing is lost while SMTP is down;
* the server refuses a message with a 4xx: ``attempts + 1``, retry after
  ``backoff * 2**(attempts - 1)`` (capped at ``MAX_BACKOFF``), or ``failed`` once
  ``LABBOOK_OUTBOX_MAX_ATTEMPTS`` is reached;
* the server refuses it with a 5xx (unknown recipient, policy): ``failed`` at once.

Failed messages are kept for admins (/admin/outbox), who can put them back in the queue.
A crash between the server's acceptance and the commit of ``sent`` leaves the message
pending; once its lease runs out it is sent again with the *same* Message-ID, so mail
readers and servers can recognise the duplicate (at-least-once delivery).

Logs name the outbox row and Message-ID, never the password (the recipient's address is
not logged either).
"""

from __future__ import annotations

import logging
import secrets
import smtplib
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

import sqlalchemy as sa
from flask import current_app

from labbook.extensions import db
from labbook.notifications.compose import compose_pending
from labbook.notifications.models import OutboxMessage

log = logging.getLogger(__name__)
MAX_BACKOFF = timedelta(hours=6)
MIN_LEASE = timedelta(minutes=5)
MAX_BATCHES_PER_RUN = 20
ERROR_LIMIT = 1000
SEVEN_BIT = policy.SMTP.clone(cte_type="7bit")


class ServerUnavailable(Exception):
    """The SMTP server cannot be used right now (connect, TLS, login, or a dropped line)."""


@dataclass(frozen=True)
class Outgoing:
    """What one claimed message needs for sending, read once after the claim."""

    id: int
    to_address: str
    subject: str
    body_text: str
    body_html: str | None
    ics: str | None
    ics_filename: str | None
    message_id: str
    created_at: datetime
    attempts: int


@dataclass
class Report:
    """What a run did: ``sent`` delivered, ``retry`` rescheduled, ``failed`` given up."""

    sent: int = 0
    retry: int = 0
    failed: int = 0
    server_down: bool = False

    def add(self, other: Report) -> None:
        self.sent += other.sent
        self.retry += other.retry
        self.failed += other.failed
        self.server_down = self.server_down or other.server_down


# -- settings ------------------------------------------------------------------------------


def _config(name: str) -> Any:
    return current_app.config[name]


def lease() -> timedelta:
    """How long a claim lasts: long enough for a whole batch to time out message by
    message. A run stops sending once half of it is used (``send_batch``)."""
    batch = int(_config("LABBOOK_OUTBOX_BATCH"))
    timeout = float(_config("LABBOOK_SMTP_TIMEOUT"))
    return max(MIN_LEASE, timedelta(seconds=timeout * (batch + 3) * 2))


def backoff(attempts: int) -> timedelta:
    """The wait before the next try after ``attempts`` failed tries (1, 2, 4, ... × base)."""
    base = timedelta(seconds=int(_config("LABBOOK_OUTBOX_BACKOFF_SECONDS")))
    exponent = min(max(attempts - 1, 0), 30)
    return min(base * (2 ** exponent), MAX_BACKOFF)


def _clean(error: BaseException | str) -> str:
    """An error text fit for the database and the log: no password, bounded."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    password = _config("LABBOOK_SMTP_PASSWORD")
    if password:
        text = text.replace(password, "***")
    return " ".join(text.split())[:ERROR_LIMIT]


# -- claiming ------------------------------------------------------------------------------


def _due(now: datetime) -> Any:
    return sa.and_(
        OutboxMessage.state == "pending",
        OutboxMessage.next_attempt_at <= now,
        sa.or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
    )


def claim(now: datetime, batch: int) -> tuple[datetime, list[Outgoing]]:
    """Claim up to ``batch`` due messages for this run and commit the claim.

    :returns: the claim token (the ``claimed_until`` written) and the claimed messages.
    """
    token = now + lease() + timedelta(microseconds=secrets.randbelow(10**6))
    due = sa.select(OutboxMessage.id).where(_due(now)).order_by(OutboxMessage.id).limit(batch)
    if db.session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    # MATERIALIZED: the candidates are chosen once. As a plain ``IN (subquery)`` PostgreSQL
    # may plan a semi-join that rescans the subquery per row, and claim past the LIMIT.
    chosen = due.cte("due").prefix_with("MATERIALIZED")
    stmt = (
        sa.update(OutboxMessage)
        .where(OutboxMessage.id.in_(sa.select(chosen.c.id)), _due(now))
        .values(claimed_until=token)
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    )
    ids = sorted(db.session.scalars(stmt).all())
    columns = [getattr(OutboxMessage, name) for name in Outgoing.__dataclass_fields__]
    rows = db.session.execute(
        sa.select(*columns).where(OutboxMessage.id.in_(ids)).order_by(OutboxMessage.id)
    ).all() if ids else []
    claimed = [Outgoing(*row) for row in rows]
    db.session.commit()
    return token, claimed


def _settle(message: Outgoing, token: datetime, **values: Any) -> bool:
    """Write the outcome of one message if this run still holds its claim, and commit.
    :returns: whether it was written (False: the claim was lost, e.g. after a retry)."""
    result = db.session.execute(
        sa.update(OutboxMessage)
        .where(OutboxMessage.id == message.id, OutboxMessage.state == "pending",
               OutboxMessage.claimed_until == token)
        .values(claimed_until=None, **values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return bool(result.rowcount)


def mark_sent(message: Outgoing, token: datetime, now: datetime) -> bool:
    return _settle(message, token, state="sent", sent_at=now, last_error=None)


def mark_failure(message: Outgoing, token: datetime, now: datetime, error: str, *,
                 permanent: bool = False, server: bool = False) -> str:
    """Record a failed try. ``server``: the server was unreachable, which never uses up
    the message's tries. :returns: ``"failed"`` or ``"retry"``."""
    attempts = message.attempts + 1
    give_up = permanent or (not server and attempts >= int(_config(
        "LABBOOK_OUTBOX_MAX_ATTEMPTS")))
    values: dict[str, Any] = {"attempts": attempts, "last_error": _clean(error)}
    if give_up:
        values["state"] = "failed"
    else:
        values["next_attempt_at"] = now + backoff(attempts)
    _settle(message, token, **values)
    log.warning("outbox %s (%s): %s, %s", message.id, message.message_id,
                "failed" if give_up else f"retry #{attempts}",
                values["last_error"].replace(message.to_address, "<recipient>"))
    return "failed" if give_up else "retry"


# -- SMTP ----------------------------------------------------------------------------------


def build_email(message: Outgoing) -> EmailMessage:
    """The MIME message: text and HTML as alternatives, the ``.ics`` attached as
    ``text/calendar; method=PUBLISH; charset=utf-8``. Bodies are quoted-printable or
    base64 (7-bit clean), so no relay needs 8BITMIME."""
    mail = EmailMessage(policy=SEVEN_BIT)
    mail["Subject"] = message.subject
    mail["From"] = formataddr(("labbook", _config("LABBOOK_SMTP_SENDER")))
    mail["To"] = message.to_address
    mail["Date"] = format_datetime(message.created_at)
    mail["Message-ID"] = message.message_id
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(message.body_text)
    if message.body_html:
        mail.add_alternative(message.body_html, subtype="html")
    if message.ics:
        mail.add_attachment(message.ics, subtype="calendar",
                            filename=message.ics_filename or "booking.ics",
                            params={"method": "PUBLISH"})
    return mail


def connect() -> smtplib.SMTP:
    """An SMTP session ready to send (STARTTLS, login when configured).

    :raises ServerUnavailable: when any step fails.
    """
    host, port = _config("LABBOOK_SMTP_HOST"), int(_config("LABBOOK_SMTP_PORT"))
    try:
        smtp = smtplib.SMTP(host, port, timeout=float(_config("LABBOOK_SMTP_TIMEOUT")))
    except (OSError, smtplib.SMTPException) as error:
        raise ServerUnavailable(_clean(error)) from None
    try:
        smtp.ehlo()
        if _config("LABBOOK_SMTP_STARTTLS"):
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        user, password = _config("LABBOOK_SMTP_USER"), _config("LABBOOK_SMTP_PASSWORD")
        if user and password:
            smtp.login(user, password)
    except (OSError, smtplib.SMTPException) as error:
        _quit(smtp)
        raise ServerUnavailable(_clean(error)) from None
    return smtp


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()


def _refusal(error: smtplib.SMTPException) -> tuple[int, str] | None:
    """``(code, text)`` of a refusal of this one message, or None for a broken session."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(error.recipients.values()), (450, b"refused"))
    elif isinstance(error, smtplib.SMTPResponseException):
        code, text = error.smtp_code, error.smtp_error
    else:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return int(code), f"{code} {text}"


def send_one(smtp: smtplib.SMTP, message: Outgoing) -> tuple[int, str] | None:
    """Send one message. :returns: None when accepted, else the server's ``(code, text)``.
    :raises ServerUnavailable: when the session broke (the message's fate is unknown,
        so it is treated as not sent)."""
    sender = _config("LABBOOK_SMTP_SENDER")
    try:
        smtp.send_message(build_email(message), from_addr=sender,
                          to_addrs=[message.to_address])
    except smtplib.SMTPServerDisconnected as error:
        raise ServerUnavailable(_clean(error)) from None
    except (smtplib.SMTPNotSupportedError, ValueError) as error:
        # This message cannot be sent as it is (e.g. an address the server cannot take).
        _reset(smtp)
        return 554, _clean(error)
    except smtplib.SMTPException as error:
        refusal = _refusal(error)
        if refusal is None or refusal[0] in (421,):  # 421: the server is closing
            raise ServerUnavailable(_clean(error)) from None
        _reset(smtp)
        return refusal
    except OSError as error:  # timeouts, resets
        raise ServerUnavailable(_clean(error)) from None
    return None


def _reset(smtp: smtplib.SMTP) -> None:
    """After a refused message, clear the transaction for the next one."""
    try:
        smtp.rset()
    except (OSError, smtplib.SMTPException) as error:
        raise ServerUnavailable(_clean(error)) from None


# -- a run ---------------------------------------------------------------------------------


def _give_back(rest: list[Outgoing], token: datetime, now: datetime, error: str) -> Report:
    """The server is unavailable: every message still claimed waits for the backoff."""
    report = Report(server_down=True)
    for message in rest:
        mark_failure(message, token, now, error, server=True)
        report.retry += 1
    return report


def send_batch(claimed: list[Outgoing], token: datetime, now: datetime) -> Report:
    """Send the claimed messages over one connection; settle each as it goes."""
    started = time.monotonic()
    try:
        smtp = connect()
    except ServerUnavailable as error:
        return _give_back(claimed, token, now, str(error))
    report = Report()
    try:
        for index, message in enumerate(claimed):
            if time.monotonic() - started > lease().total_seconds() / 2:
                # Too slow to be sure the claim still holds: leave the rest for later.
                _release(claimed[index:], token)
                break
            try:
                refusal = send_one(smtp, message)
            except ServerUnavailable as error:
                report.add(_give_back(claimed[index:], token, now, str(error)))
                break
            _record(report, message, token, now, refusal)
    finally:
        _quit(smtp)
    return report


def _record(report: Report, message: Outgoing, token: datetime, now: datetime,
            refusal: tuple[int, str] | None) -> None:
    if refusal is None:
        if not mark_sent(message, token, now):
            log.warning("outbox %s (%s) was sent but its claim had been taken over",
                        message.id, message.message_id)
        report.sent += 1
        return
    code, text = refusal
    outcome = mark_failure(message, token, now, text, permanent=500 <= code < 600)
    setattr(report, outcome, getattr(report, outcome) + 1)


def _release(rest: list[Outgoing], token: datetime) -> None:
    for message in rest:
        _settle(message, token)


def deliver_due(now: datetime) -> Report:
    """Deliver every message due at ``now``, batch by batch, until none is left, the
    server is unavailable, or ``MAX_BATCHES_PER_RUN`` batches went (the next run goes on).
    """
    total = Report()
    batch = int(_config("LABBOOK_OUTBOX_BATCH"))
    compose_pending(now, batch, MAX_BATCHES_PER_RUN)
    for _round in range(MAX_BATCHES_PER_RUN):
        token, claimed = claim(now, batch)
        if not claimed:
            break
        report = send_batch(claimed, token, now)
        total.add(report)
        if report.server_down or len(claimed) < batch:
            break
    if total.sent or total.retry or total.failed:
        log.info("outbox: %d sent, %d to retry, %d failed%s", total.sent, total.retry,
                 total.failed, " (SMTP server unavailable)" if total.server_down else "")
    return total
