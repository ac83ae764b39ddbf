"""The notifications API: my list (paginated, ``?unread=``), mark one read; someone else's
is a 404, bad input a 422, no token a 401."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from labbook.extensions import db
from labbook.notifications.models import Notification
from labbook.notifications.services import notify
from tests.factories import make_booking, make_user

T0 = datetime(2029, 12, 20, 8, 0, tzinfo=timezone.utc)


def _notes(user, n: int) -> list[Notification]:  # type: ignore[no-untyped-def]
    notes = [notify(user, "no_show", params={"instrument": f"SEM {i}"},
                    now=T0 + timedelta(minutes=i)) for i in range(n)]
    db.session.commit()
    return notes


def test_list_is_mine_newest_first_and_paginated(client, api_token):
    me, other = make_user(), make_user()
    mine = _notes(me, 3)
    _notes(other, 2)
    headers = api_token(me)
    body = client.get("/api/v1/notifications?per_page=2", headers=headers).get_json()
    assert body["total"] == 3 and body["page"] == 1 and body["per_page"] == 2
    assert [item["id"] for item in body["items"]] == [mine[2].id, mine[1].id]
    item = body["items"][0]
    assert set(item) == {"id", "kind", "title", "params", "booking_id", "url", "created_at",
                         "read_at"}
    assert item["kind"] == "no_show" and "SEM 2" in item["title"] and item["read_at"] is None
    page2 = client.get("/api/v1/notifications?per_page=2&page=2", headers=headers).get_json()
    assert [i["id"] for i in page2["items"]] == [mine[0].id]


def test_unread_filter(client, api_token):
    me = make_user()
    read, unread = _notes(me, 2)
    read.read_at = T0
    db.session.commit()
    headers = api_token(me)
    only_unread = client.get("/api/v1/notifications?unread=true", headers=headers).get_json()
    assert [i["id"] for i in only_unread["items"]] == [unread.id]
    only_read = client.get("/api/v1/notifications?unread=false", headers=headers).get_json()
    assert [i["id"] for i in only_read["items"]] == [read.id]


def test_title_is_in_the_callers_language(client, api_token):
    me = make_user(locale="zh_Hans")
    notify(me, "no_show", params={"instrument": "SEM", "start": "2030-01-07 10:00"}, now=T0)
    db.session.commit()
    [item] = client.get("/api/v1/notifications", headers=api_token(me)).get_json()["items"]
    assert "2030年1月7日" in item["title"]


def test_booking_link(app, client, api_token):
    booking = make_booking()
    notify(booking.user, "booking_confirmed", reservation=booking,
           params={"instrument": booking.instrument.name}, now=T0)
    db.session.commit()
    [item] = client.get("/api/v1/notifications",
                        headers=api_token(booking.user)).get_json()["items"]
    assert item["booking_id"] == booking.id
    assert item["url"] == app.config["LABBOOK_BASE_URL"].rstrip("/") + f"/bookings/{booking.id}"


def test_mark_read_and_unread(client, api_token):
    me = make_user()
    [note] = _notes(me, 1)
    headers = api_token(me)
    response = client.post(f"/api/v1/notifications/{note.id}/read", headers=headers)
    assert response.status_code == 200
    first = response.get_json()["read_at"]
    assert first is not None
    again = client.post(f"/api/v1/notifications/{note.id}/read", headers=headers, json={})
    assert again.get_json()["read_at"] == first, "the first reading time is kept"
    unread = client.post(f"/api/v1/notifications/{note.id}/read", headers=headers,
                         json={"read": False})
    assert unread.status_code == 200 and unread.get_json()["read_at"] is None
    db.session.expire_all()
    assert db.session.get(Notification, note.id).read_at is None


def test_someone_elses_notification_is_not_found(client, api_token):
    me, other = make_user(), make_user()
    [theirs] = _notes(other, 1)
    response = client.post(f"/api/v1/notifications/{theirs.id}/read", headers=api_token(me))
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
    db.session.expire_all()
    assert db.session.get(Notification, theirs.id).read_at is None
    too_big = client.post("/api/v1/notifications/99999999999/read", headers=api_token(me))
    assert too_big.status_code == 404


def test_bad_input_is_a_422(client, api_token):
    me = make_user()
    [note] = _notes(me, 1)
    headers = api_token(me)
    for query in ("unread=maybe", "per_page=0", "page=x", "colour=blue"):
        response = client.get(f"/api/v1/notifications?{query}", headers=headers)
        assert response.status_code == 422, query
        assert response.get_json()["error"]["code"] == "validation"
    bad_body = client.post(f"/api/v1/notifications/{note.id}/read", headers=headers,
                           json={"read": "yes", "extra": 1})
    assert bad_body.status_code == 422
    assert set(bad_body.get_json()["error"]["fields"]) == {"read", "extra"}
    not_json = client.post(f"/api/v1/notifications/{note.id}/read", headers=headers,
                           data="read", content_type="text/plain")
    assert not_json.status_code == 415
    db.session.expire_all()
    assert db.session.get(Notification, note.id).read_at is None


def test_a_token_is_required(client):
    assert client.get("/api/v1/notifications").status_code == 401
    assert client.post("/api/v1/notifications/1/read").status_code == 401
