"""The notification pages: the list (own only, unread first-class, mark read), the mail
preferences (CSRF, saved, then honoured by notify) and the admin outbox (admins only)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.bookings.notices import notify_owner
from labbook.extensions import db
from labbook.notifications.models import Notification, NotificationPreference, OutboxMessage
from labbook.notifications.services import notify
from tests.conftest import csrf_token
from tests.mail import compose
from tests.factories import make_booking, make_user

T0 = datetime(2029, 12, 20, 8, 0, tzinfo=timezone.utc)
PREFS = "/notifications/preferences"


def _note(user, kind="no_show", instrument="SEM 7"):  # type: ignore[no-untyped-def]
    note = notify(user, kind, params={"instrument": instrument, "start": "2030-01-07 10:00"},
                  now=T0)
    db.session.commit()
    compose(T0)
    return note


def test_list_shows_only_my_notifications_newest_first(client, login_as):
    me = login_as("researcher")
    other = make_user()
    older = _note(me, instrument="Older SEM")
    newer = notify(me, "qualification_granted", params={"instrument": "Newer XRD"},
                   now=T0 + timedelta(hours=1))
    theirs = _note(other, instrument="Secret TEM")
    db.session.commit()
    html = client.get("/notifications").get_data(as_text=True)
    assert f'id="notification-{older.id}"' in html and f'id="notification-{newer.id}"' in html
    assert f'id="notification-{theirs.id}"' not in html and "Secret TEM" not in html
    assert html.index("Newer XRD") < html.index("Older SEM")


def test_unread_notifications_stand_out_and_are_counted_in_the_header(client, login_as):
    me = login_as("researcher")
    first, second = _note(me), _note(me)
    first.read_at = T0
    db.session.commit()
    html = client.get("/notifications").get_data(as_text=True)
    row = html[html.index(f'id="notification-{second.id}"'):]
    assert row.startswith(f'id="notification-{second.id}" class="unread"')
    assert f'id="notification-{first.id}" class="read"' in html
    nav = html[html.index('id="nav-notifications"'):]
    assert nav[:nav.index("</a>")].count('<span class="tag nav-count">1</span>') == 1


def test_open_marks_read_and_goes_to_the_booking(client, login_as):
    me = login_as("researcher")
    booking = make_booking(user=None)
    booking.user = me
    booking.team_id = booking.account.team_id
    note = notify_owner(booking, "booking_confirmed", now=T0)
    db.session.commit()
    html = client.get("/notifications").get_data(as_text=True)
    assert f'href="/bookings/{booking.id}"' in html
    response = client.post(f"/notifications/{note.id}/read", data={
        "csrf_token": csrf_token(client, PREFS), "next": f"/bookings/{booking.id}"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/bookings/{booking.id}")
    db.session.expire_all()
    assert db.session.get(Notification, note.id).read_at is not None


def test_someone_elses_notification_is_not_found(client, login_as):
    login_as("researcher")
    theirs = _note(make_user())
    response = client.post(f"/notifications/{theirs.id}/read",
                           data={"csrf_token": csrf_token(client, PREFS)})
    assert response.status_code == 404
    db.session.expire_all()
    assert db.session.get(Notification, theirs.id).read_at is None
    assert client.post("/notifications/99999999999/read",
                       data={"csrf_token": csrf_token(client, PREFS)}).status_code == 404


def test_mark_read_needs_the_csrf_token(client, login_as):
    me = login_as("researcher")
    note = _note(me)
    assert client.post(f"/notifications/{note.id}/read").status_code == 400
    assert client.post("/notifications/read").status_code == 400
    db.session.expire_all()
    assert db.session.get(Notification, note.id).read_at is None


def test_mark_all_read_touches_only_mine(client, login_as):
    me = login_as("researcher")
    mine = [_note(me), _note(me)]
    theirs = _note(make_user())
    response = client.post("/notifications/read", data={"csrf_token": csrf_token(client, PREFS)})
    assert response.status_code == 302
    db.session.expire_all()
    assert all(db.session.get(Notification, n.id).read_at is not None for n in mine)
    assert db.session.get(Notification, theirs.id).read_at is None
    html = client.get("/notifications").get_data(as_text=True)
    nav = html[html.index('id="nav-notifications"'):]
    assert 'class="tag"' not in nav[:nav.index("</a>")]


def test_list_is_paginated(app, client, login_as, monkeypatch):
    monkeypatch.setitem(app.config, "LABBOOK_PAGE_SIZE", 5)
    me = login_as("researcher")
    for _ in range(7):
        _note(me)
    first = client.get("/notifications").get_data(as_text=True)
    second = client.get("/notifications?page=2").get_data(as_text=True)
    assert first.count('id="notification-') == 5 and second.count('id="notification-') == 2
    assert "?page=2" in first


def test_preferences_save_and_then_mail_is_skipped_for_that_kind(client, login_as):
    me = login_as("researcher")
    html = client.get(PREFS).get_data(as_text=True)
    assert '<input checked id="no_show" name="no_show" type="checkbox" value="y">' in html
    data = {"csrf_token": csrf_token(client, PREFS), "booking_confirmed": "y", "reminder": "y"}
    response = client.post(PREFS, data=data)
    assert response.status_code == 302
    saved = dict(db.session.execute(sa.select(
        NotificationPreference.kind, NotificationPreference.by_email).where(
        NotificationPreference.user_id == me.id)).all())
    assert saved["no_show"] is False and saved["reminder"] is True
    assert db.session.scalars(sa.select(AuditEntry).where(
        AuditEntry.action == "notifications.preferences", AuditEntry.actor_id == me.id)).one()

    skipped, mailed = _note(me, "no_show"), _note(me, "reminder")
    outbox = set(db.session.scalars(sa.select(OutboxMessage.notification_id).where(
        OutboxMessage.recipient_id == me.id)))
    assert outbox == {mailed.id}, "no_show is listed in the app but not mailed"
    assert skipped.id in {n.id for n in db.session.scalars(
        sa.select(Notification).where(Notification.user_id == me.id))}
    html = client.get(PREFS).get_data(as_text=True)
    assert '<input id="no_show" name="no_show" type="checkbox" value="y">' in html
    assert '<input checked id="reminder" name="reminder" type="checkbox" value="y">' in html


def test_preferences_refuse_a_post_without_csrf(client, login_as):
    me = login_as("researcher")
    assert client.post(PREFS, data={"reminder": "y"}).status_code == 400
    assert db.session.scalar(sa.select(sa.func.count()).select_from(
        NotificationPreference).where(NotificationPreference.user_id == me.id)) == 0


def test_admin_outbox_is_for_admins_only(client, login_as):
    login_as("facility_manager")
    assert client.get("/admin/outbox").status_code == 403
    message = db.session.scalars(sa.select(OutboxMessage).where(
        OutboxMessage.notification_id == _note(make_user()).id)).one()
    response = client.post(f"/admin/outbox/{message.id}/retry",
                           data={"csrf_token": csrf_token(client, PREFS)})
    assert response.status_code == 403


def test_admin_outbox_counts_filters_and_refuses_to_resend_sent_mail(client, login_as):
    login_as("admin")
    pending = db.session.scalars(sa.select(OutboxMessage).where(
        OutboxMessage.notification_id == _note(make_user()).id)).one()
    sent = db.session.scalars(sa.select(OutboxMessage).where(
        OutboxMessage.notification_id == _note(make_user(), "reminder").id)).one()
    sent.state, sent.sent_at = "sent", T0
    db.session.commit()

    html = client.get("/admin/outbox").get_data(as_text=True)
    assert f'id="message-{pending.id}"' in html and f'id="message-{sent.id}"' not in html
    assert 'id="to-compose"' not in html
    notify(make_user(), "no_show", params={"instrument": "SEM 7"}, now=T0)
    db.session.commit()
    html = client.get("/admin/outbox").get_data(as_text=True)
    assert "1 notification is waiting to be written as mail" in html
    html = client.get("/admin/outbox?state=sent").get_data(as_text=True)
    assert f'id="message-{sent.id}"' in html and f'id="message-{pending.id}"' not in html
    assert 'id="count-sent"' in html

    response = client.post(f"/admin/outbox/{sent.id}/retry",
                           data={"csrf_token": csrf_token(client, PREFS)})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(OutboxMessage, sent.id).state == "sent"
    assert client.post("/admin/outbox/999999/retry",
                       data={"csrf_token": csrf_token(client, PREFS)}).status_code == 404
