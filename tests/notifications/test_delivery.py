"""Delivering the outbox over real SMTP (aiosmtpd on 127.0.0.1): what arrives, and what
happens when the server is down, refuses, or a run loses its claim. ``now`` is injected;
nothing sleeps."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage

import pytest
import sqlalchemy as sa
from icalendar import Calendar

from labbook.audit import AuditEntry
from labbook.bookings.notices import booking_params, notify_owner
from labbook.extensions import db
from labbook.feeds.ics import reservation_uid
from labbook.notifications import delivery
from labbook.notifications.models import OutboxMessage
from labbook.notifications.services import notify, to_compose
from labbook.notifications.tasks import deliver_outbox
from tests.factories import make_booking, make_user
from tests.mail import compose

T0 = datetime(2029, 12, 20, 8, 0, tzinfo=timezone.utc)


def _queue(*users, kind: str = "no_show", now: datetime = T0) -> list[OutboxMessage]:
    """One committed outbox message per user."""
    notes = [notify(u, kind, params={"instrument": "SEM 7", "start": "2030-01-07 10:00"},
                    now=now) for u in users]
    db.session.commit()
    compose(now)
    return [db.session.scalars(sa.select(OutboxMessage).where(
        OutboxMessage.notification_id == n.id)).one() for n in notes]


def _parts(mail: EmailMessage) -> dict[str, EmailMessage]:
    return {part.get_content_type(): part for part in mail.walk() if not part.is_multipart()}


def _ids(sink) -> Counter:  # type: ignore[no-untyped-def]
    return Counter(m["Message-ID"] for m in sink.received())


def _fresh(message: OutboxMessage) -> OutboxMessage:
    db.session.expire_all()
    return db.session.get(OutboxMessage, message.id)


def test_deliver_outbox_sends_the_queued_mail(app, smtp_sink):
    booking = make_booking(purpose="imaging")
    note = notify_owner(booking, "booking_confirmed")
    db.session.commit()
    compose()
    stored = db.session.scalars(sa.select(OutboxMessage).where(
        OutboxMessage.notification_id == note.id)).one()

    assert deliver_outbox() == 1  # the real clock: the message is due now

    [mail] = smtp_sink.received()
    assert mail["Subject"] == stored.subject
    assert mail["To"] == booking.user.email
    assert app.config["LABBOOK_SMTP_SENDER"] in mail["From"]
    assert mail["Message-ID"] == stored.message_id
    assert smtp_sink.envelopes[0][1] == [booking.user.email]
    parts = _parts(mail)
    assert booking.instrument.name in parts["text/plain"].get_content()
    assert f"/bookings/{booking.id}" in parts["text/html"].get_content()
    assert mail.get_content_type() == "multipart/mixed"
    assert any(p.get_content_type() == "multipart/alternative" for p in mail.walk())
    calendar_part = parts["text/calendar"]
    assert calendar_part.get_param("method") == "PUBLISH"
    assert calendar_part.get_content_charset() == "utf-8"
    assert calendar_part.get_filename() == f"booking-{booking.id}.ics"
    event = Calendar.from_ical(calendar_part.get_content()).walk("VEVENT")[0]
    assert str(event["UID"]) == reservation_uid(booking)
    sent = _fresh(stored)
    assert sent.state == "sent" and sent.sent_at is not None and sent.claimed_until is None
    assert sent.attempts == 0


def test_chinese_recipient_gets_the_mail_in_chinese(app, smtp_sink):
    booking = make_booking(start=datetime(2030, 1, 7, 2, 0, tzinfo=timezone.utc))
    booking.user.locale = "zh_Hans"
    notify_owner(booking, "booking_confirmed", now=T0)
    db.session.commit()
    assert deliver_outbox(T0) == 1
    [mail] = smtp_sink.received()
    # The date as Chinese writes it (CLDR, so it holds whatever the catalog says) and the
    # HTML declares its language: the mail was rendered under force_locale("zh_Hans").
    assert "2030年1月7日" in mail["Subject"]
    parts = _parts(mail)
    assert "2030年1月7日周一 10:00" in parts["text/plain"].get_content()
    assert '<html lang="zh-Hans">' in parts["text/html"].get_content()


def test_smtp_down_keeps_mail_pending_then_delivers_exactly_once(app, smtp_sink):
    messages = _queue(make_user(), make_user(), make_user())
    smtp_sink.stop()

    assert deliver_outbox(T0) == 0
    for message in map(_fresh, messages):
        assert message.state == "pending" and message.attempts == 1
        assert message.next_attempt_at == T0 + timedelta(seconds=60)
        assert message.claimed_until is None and message.sent_at is None
        assert "Connection" in message.last_error or "refused" in message.last_error
    assert deliver_outbox(T0 + timedelta(seconds=30)) == 0  # waiting out the backoff
    assert all(_fresh(m).attempts == 1 for m in messages), "no retry before the backoff"

    smtp_sink.start()
    assert smtp_sink.received() == []
    assert deliver_outbox(T0 + timedelta(seconds=61)) == 3
    counts = _ids(smtp_sink)
    assert counts == Counter({m.message_id: 1 for m in messages})
    assert deliver_outbox(T0 + timedelta(hours=1)) == 0
    assert _ids(smtp_sink) == counts, "running the job again sends nothing more"
    assert {_fresh(m).state for m in messages} == {"sent"}


def test_a_long_outage_never_gives_mail_up(app, smtp_sink, monkeypatch):
    monkeypatch.setitem(app.config, "LABBOOK_OUTBOX_MAX_ATTEMPTS", 2)
    [message] = _queue(make_user())
    smtp_sink.stop()
    now = T0
    for _ in range(4):
        deliver_outbox(now)
        now = _fresh(message).next_attempt_at
    message = _fresh(message)
    assert message.state == "pending" and message.attempts == 4
    smtp_sink.start()
    assert deliver_outbox(now) == 1


def test_backoff_doubles_and_is_capped(app, monkeypatch):
    monkeypatch.setitem(app.config, "LABBOOK_OUTBOX_BACKOFF_SECONDS", 60)
    assert [delivery.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [60, 120, 240, 480]
    assert delivery.backoff(40) == delivery.MAX_BACKOFF == timedelta(hours=6)


def test_permanent_refusal_fails_the_message_and_the_batch_goes_on(app, refusing_sink):
    bad, good = make_user(), make_user()
    refusing_sink.refuse[bad.email] = "550 5.1.1 No such mailbox"
    refused, accepted = _queue(bad, good)

    assert deliver_outbox(T0) == 1
    refused, accepted = _fresh(refused), _fresh(accepted)
    assert refused.state == "failed" and refused.attempts == 1
    assert refused.last_error.startswith("550") and refused.claimed_until is None
    assert accepted.state == "sent"
    assert _ids(refusing_sink) == Counter({accepted.message_id: 1})
    assert deliver_outbox(T0 + timedelta(days=1)) == 0, "a failed message is not retried"


def test_temporary_refusals_until_max_attempts_then_failed(app, refusing_sink, monkeypatch):
    monkeypatch.setitem(app.config, "LABBOOK_OUTBOX_MAX_ATTEMPTS", 3)
    user = make_user()
    refusing_sink.refuse[user.email] = "451 4.3.0 Try again later"
    [message] = _queue(user)

    seen = []
    now = T0
    for _ in range(3):
        deliver_outbox(now)
        row = _fresh(message)
        seen.append((row.state, row.attempts, row.next_attempt_at - now))
        now = row.next_attempt_at
    assert seen == [
        ("pending", 1, timedelta(seconds=60)),
        ("pending", 2, timedelta(seconds=120)),
        ("failed", 3, timedelta(0)),  # given up: not rescheduled
    ]
    assert "451" in _fresh(message).last_error
    assert refusing_sink.received() == []


def test_a_server_closing_mid_batch_stops_the_batch(app, refusing_sink):
    first, closing, later = make_user(), make_user(), make_user()
    refusing_sink.refuse[closing.email] = "421 4.3.2 Service shutting down"
    sent, stopped, untried = _queue(first, closing, later)

    assert deliver_outbox(T0) == 1
    assert _fresh(sent).state == "sent"
    for message in (_fresh(stopped), _fresh(untried)):
        assert message.state == "pending" and message.attempts == 1
        assert message.next_attempt_at == T0 + timedelta(seconds=60)
    assert refusing_sink.refused == [closing.email], "the batch stopped after the 421"


def test_one_connection_per_batch_and_every_batch_in_one_run(app, smtp_sink, monkeypatch):
    monkeypatch.setitem(app.config, "LABBOOK_OUTBOX_BATCH", 2)
    connections = []
    real_connect = delivery.connect

    def counting_connect():  # type: ignore[no-untyped-def]
        connections.append(1)
        return real_connect()

    monkeypatch.setattr(delivery, "connect", counting_connect)
    messages = _queue(*(make_user() for _ in range(5)))
    assert deliver_outbox(T0) == 5
    assert len(connections) == 3
    assert _ids(smtp_sink) == Counter({m.message_id: 1 for m in messages})


def test_a_claimed_message_is_not_sent_by_another_run(app, smtp_sink):
    [message] = _queue(make_user())
    token, claimed = delivery.claim(T0, 10)  # another run holds it (and then dies)
    assert [c.id for c in claimed] == [message.id]
    assert deliver_outbox(T0) == 0
    assert deliver_outbox(T0 + delivery.lease() - timedelta(seconds=1)) == 0
    assert smtp_sink.received() == []
    assert deliver_outbox(token + timedelta(seconds=1)) == 1, "taken over once the lease ran out"
    assert _ids(smtp_sink) == Counter({message.message_id: 1})


def test_sent_is_recorded_only_while_the_claim_is_ours(app):
    [message] = _queue(make_user())
    token, [claimed] = delivery.claim(T0, 10)
    db.session.execute(sa.update(OutboxMessage).where(OutboxMessage.id == message.id)
                       .values(claimed_until=token + timedelta(minutes=1)))
    db.session.commit()
    assert delivery.mark_sent(claimed, token, T0) is False
    assert _fresh(message).state == "pending"
    assert delivery.mark_sent(claimed, token + timedelta(minutes=1), T0) is True
    assert _fresh(message).state == "sent"


def test_a_rolled_back_change_leaves_no_outbox_row(app, smtp_sink):
    booking = make_booking()
    db.session.commit()
    before = db.session.scalar(sa.select(sa.func.count(OutboxMessage.id)))
    notify_owner(booking, "booking_cancelled", now=T0)
    assert to_compose() == 1
    db.session.rollback()
    assert to_compose() == 0
    assert deliver_outbox(T0) == 0
    assert db.session.scalar(sa.select(sa.func.count(OutboxMessage.id))) == before
    assert smtp_sink.received() == []


def test_the_admin_retry_puts_a_failed_message_back(app, client, login_as, refusing_sink):
    from tests.conftest import csrf_token

    user = make_user()
    refusing_sink.refuse[user.email] = "550 5.7.1 Rejected by policy"
    [message] = _queue(user)
    deliver_outbox(T0)
    assert _fresh(message).state == "failed"

    admin = login_as("admin")
    page = client.get("/admin/outbox").get_data(as_text=True)
    assert f'id="message-{message.id}"' in page and "550 5.7.1 Rejected by policy" in page
    assert user.email in page
    response = client.post(f"/admin/outbox/{message.id}/retry",
                           data={"csrf_token": csrf_token(client, "/admin/outbox")})
    assert response.status_code == 302
    retried = _fresh(message)
    assert (retried.state, retried.attempts, retried.last_error) == ("pending", 0, None)
    entry = db.session.scalars(sa.select(AuditEntry).where(
        AuditEntry.action == "outbox.retry", AuditEntry.object_id == str(message.id))).one()
    assert entry.actor_id == admin.id and entry.before["state"] == "failed"

    del refusing_sink.refuse[user.email]
    assert deliver_outbox(retried.next_attempt_at) == 1
    assert _ids(refusing_sink) == Counter({message.message_id: 1})


@pytest.mark.parametrize("password", ["s3cret-pass"])
def test_errors_never_carry_the_smtp_password(app, monkeypatch, password):
    monkeypatch.setitem(app.config, "LABBOOK_SMTP_PASSWORD", password)
    assert password not in delivery._clean(f"535 auth failed for {password}")


def test_booking_params_survive_the_trip(app, smtp_sink):
    booking = make_booking(state_reason="instrument unavailable")
    notify_owner(booking, "outage_affects_booking", now=T0, outage_kind="repair",
                 outage_title="Column realignment")
    db.session.commit()
    deliver_outbox(T0)
    [mail] = smtp_sink.received()
    text = _parts(mail)["text/plain"].get_content()
    assert "Column realignment" in text and "instrument unavailable" in text
    assert booking_params(booking)["instrument"] in mail["Subject"]


@pytest.mark.parametrize("setting", [
    {"LABBOOK_SMTP_USER": "labbook", "LABBOOK_SMTP_PASSWORD": "s3cret-pass"},
    {"LABBOOK_SMTP_STARTTLS": True},
])
def test_a_server_that_cannot_do_login_or_starttls_keeps_mail_pending(
    app, smtp_sink, monkeypatch, caplog, setting
):
    """The sink offers neither AUTH nor STARTTLS: the configured step fails, which is a
    server problem (nothing is sent, everything waits), and the password appears nowhere."""
    for key, value in setting.items():
        monkeypatch.setitem(app.config, key, value)
    [message] = _queue(make_user())
    assert deliver_outbox(T0) == 0
    row = _fresh(message)
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.last_error and "s3cret-pass" not in row.last_error
    assert "s3cret-pass" not in caplog.text
    assert smtp_sink.received() == []
