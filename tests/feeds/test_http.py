"""The feed URL over HTTP: headers, validators and 304s, HEAD, changes seen by the next
fetch, and who gets 404."""
from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from email.utils import format_datetime

import sqlalchemy as sa
from sqlalchemy import event

from labbook.bookings import services as booking_services
from labbook.bookings import usage
from labbook.bookings.models import Reservation
from labbook.db import now_utc
from labbook.extensions import db
from labbook.feeds import content, fetch, services, views
from labbook.teams.models import Membership
from tests import factories
from tests.conftest import login
from tests.feeds.conftest import at
from tests.feeds.parsers import events_by_uid, read_both, utc


@contextmanager
def statements() -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        if not statement.startswith(("SAVEPOINT", "RELEASE SAVEPOINT")):  # the test harness
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def no_render(*args, **kwargs):  # type: ignore[no-untyped-def]
    raise AssertionError("a 304 must not render the feed")


def test_http_headers(client, scene, feed_url):
    response = client.get(feed_url(scene.owner, "user"))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    etag, weak = response.get_etag()
    assert etag and not weak
    assert response.last_modified is not None
    assert response.headers["Cache-Control"] == "private, max-age=3600"
    assert "Set-Cookie" not in response.headers


def test_http_identical_bytes_and_etag_for_an_unchanged_feed(client, scene, feed_url):
    path = feed_url(scene.owner, "instrument", scene.instrument.id)
    first, second = client.get(path), client.get(path)
    assert first.data == second.data
    assert first.headers["ETag"] == second.headers["ETag"]
    assert first.headers["Last-Modified"] == second.headers["Last-Modified"]


def test_http_if_none_match_answers_304_without_rendering(client, scene, feed_url,
                                                          monkeypatch):
    path = feed_url(scene.owner, "user")
    first = client.get(path)
    monkeypatch.setattr(content, "render", no_render)
    for header in (first.headers["ETag"], f'"other", {first.headers["ETag"]}', "*",
                   "W/" + first.headers["ETag"]):
        response = client.get(path, headers={"If-None-Match": header})
        assert response.status_code == 304, header
        assert response.data == b""
        assert response.headers["ETag"] == first.headers["ETag"]
        assert response.headers["Cache-Control"] == "private, max-age=3600"
    monkeypatch.undo()
    assert client.get(path, headers={"If-None-Match": '"stale"'}).status_code == 200


def test_http_if_modified_since_answers_304(client, scene, feed_url, monkeypatch):
    path = feed_url(scene.owner, "user")
    first = client.get(path)
    monkeypatch.setattr(content, "render", no_render)
    response = client.get(path, headers={"If-Modified-Since": first.headers["Last-Modified"]})
    assert response.status_code == 304
    monkeypatch.undo()
    earlier = format_datetime(first.last_modified - timedelta(seconds=1), usegmt=True)
    assert client.get(path, headers={"If-Modified-Since": earlier}).status_code == 200
    future = format_datetime(now_utc() + timedelta(days=1), usegmt=True)
    assert client.get(path, headers={"If-Modified-Since": future}).status_code == 200
    # If-None-Match decides when both are sent (RFC 9110 13.2.2).
    both = {"If-Modified-Since": first.headers["Last-Modified"], "If-None-Match": '"stale"'}
    assert client.get(path, headers=both).status_code == 200


def test_http_head_has_the_headers_and_no_body(client, scene, feed_url):
    path = feed_url(scene.owner, "user")
    get, head = client.get(path), client.head(path)
    assert head.status_code == 200 and head.data == b""
    for name in ("Content-Type", "ETag", "Last-Modified", "Cache-Control", "Content-Length"):
        assert head.headers[name] == get.headers[name]
    assert client.head(path, headers={"If-None-Match": get.headers["ETag"]}).status_code == 304


def test_http_cancel_shows_cancelled_with_a_higher_sequence(client, scene, feed_url):
    path = feed_url(scene.owner, "user")
    booking = scene.bookings["mine"]
    before = client.get(path)
    booking_services.cancel_booking(scene.owner, booking, "not needed")
    db.session.commit()
    after = client.get(path, headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200
    assert after.headers["ETag"] != before.headers["ETag"]
    old = events_by_uid(read_both(before.data))
    new = events_by_uid(read_both(after.data))
    assert set(old) == set(new)  # same UID
    (uid,) = new
    assert (old[uid]["status"], new[uid]["status"]) == ("CONFIRMED", "CANCELLED")
    assert new[uid]["sequence"] > old[uid]["sequence"]


def test_http_reschedule_shows_new_times_with_a_higher_sequence(client, scene, feed_url):
    path = feed_url(scene.owner, "instrument", scene.instrument.id)
    booking = scene.bookings["mine"]
    before = client.get(path)
    start = at(scene.day, 15)
    booking_services.reschedule_booking(scene.manager, booking, start, start + timedelta(hours=2))
    db.session.commit()
    after = client.get(path)
    assert after.headers["ETag"] != before.headers["ETag"]
    uid = f"reservation-{booking.id}@127.0.0.1"
    old, new = events_by_uid(read_both(before.data))[uid], events_by_uid(read_both(after.data))[uid]
    assert new["sequence"] > old["sequence"]
    assert (new["start"]["utc"], new["end"]["utc"]) == (utc(start), utc(start + timedelta(hours=2)))
    assert new["start"]["local"].endswith("T15:00:00") and new["status"] == "CONFIRMED"


def test_http_unknown_malformed_and_revoked_tokens_are_404(client, scene, feed_url):
    assert client.get(f"/feeds/{secrets.token_urlsafe(32)}.ics").status_code == 404
    assert client.get("/feeds/short.ics").status_code == 404
    assert client.get(f"/feeds/{'x' * 200}.ics").status_code == 404
    path = feed_url(scene.owner, "user")
    assert client.get(path).status_code == 200
    (feed,) = services.active_feeds(scene.owner)
    services.revoke_feed(scene.owner, feed.id)
    db.session.commit()
    assert client.get(path).status_code == 404
    assert client.head(path).status_code == 404


def test_http_inactive_owner_is_404(client, scene, feed_url):
    path = feed_url(scene.owner, "instrument", scene.instrument.id)
    scene.owner.active = False
    db.session.commit()
    assert client.get(path).status_code == 404


def test_http_team_feed_reads_its_team_only_and_dies_with_membership(client, scene, feed_url):
    lead = factories.make_user_with_role("team_lead", team=scene.team)
    other_lead = factories.make_user_with_role("team_lead", team=scene.other_team)
    db.session.commit()
    path = feed_url(lead, "team", scene.team.id)
    other_path = feed_url(other_lead, "team", scene.other_team.id)
    mine = f"reservation-{scene.bookings['mine'].id}@127.0.0.1"
    theirs = f"reservation-{scene.bookings['theirs'].id}@127.0.0.1"
    assert set(events_by_uid(read_both(client.get(path).data))) == {mine}
    assert set(events_by_uid(read_both(client.get(other_path).data))) == {theirs}
    # Nothing in the request can point a token at another team.
    response = client.get(f"{path}?team={scene.other_team.id}&id={scene.other_team.id}")
    assert set(events_by_uid(read_both(response.data))) == {mine}
    db.session.execute(sa.delete(Membership).where(Membership.user_id == lead.id))
    db.session.commit()
    db.session.expire_all()
    assert client.get(path).status_code == 404


def test_http_the_feed_shows_its_owners_view_not_the_sessions(client, scene, feed_url):
    path = feed_url(scene.owner, "instrument", scene.instrument.id)
    assert login(client, scene.manager.email).status_code == 302
    summaries = [e["summary"] for e in read_both(client.get(path).data)["events"]]
    assert summaries == ["SEM-01: Imaging grains", "SEM-01: Busy"]


def test_http_statements_do_not_grow_with_the_events(app, client, scene, feed_url):
    path = feed_url(scene.manager, "facility", scene.facility.id)
    db.session.expunge_all()  # a request starts with an empty session, as in production
    with statements() as few:
        assert client.get(path).status_code == 200
    instruments = [factories.make_instrument(scene.facility) for _ in range(3)]
    for n in range(24):
        user = factories.make_booker(instruments[n % 3])
        factories.make_booking(instruments[n % 3], user,
                               start=at(scene.day, 8) + timedelta(days=n // 3, hours=n % 3))
    db.session.commit()
    db.session.expunge_all()
    with statements() as many:
        body = client.get(path).data
    assert len(read_both(body)["events"]) == 26
    assert len(many) == len(few) <= 4  # and the lookup
    etag = client.head(path).headers["ETag"]
    db.session.expunge_all()
    with statements() as kept:
        assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
    # Only the lookup (feed, owner, roles, change marker in one query), which runs on the
    # DBAPI connection itself and so is not among the statements SQLAlchemy counts here.
    assert kept == []
    app.extensions.pop(fetch.EXTENSION)  # a fresh process: nothing kept yet
    db.session.expunge_all()
    with statements() as cold:
        assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
    # Besides the lookup: the feed with its owner, the facilities the owner manages (the
    # visibility rule needs them), one aggregate: nothing per event.
    assert len(cold) == 3


def test_http_kept_validators_follow_audited_changes_at_once(client, scene, feed_url):
    path = feed_url(scene.owner, "user")
    etag = client.get(path).headers["ETag"]
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
    usage.change_purpose(scene.owner, scene.bookings["mine"], "New purpose")
    db.session.commit()
    response = client.get(path, headers={"If-None-Match": etag})
    assert response.status_code == 200
    assert read_both(response.data)["events"][0]["summary"] == "SEM-01: New purpose"


def test_http_kept_validators_expire(client, scene, feed_url, monkeypatch):
    """A change that bypasses the services (no audit row) shows within VALIDATORS_TTL."""
    path = feed_url(scene.owner, "user")
    etag = client.get(path).headers["ETag"]
    db.session.execute(sa.update(Reservation).where(Reservation.id == scene.bookings["mine"].id)
                       .values(purpose="Changed behind labbook's back"))
    db.session.commit()
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
    later = now_utc() + fetch.VALIDATORS_TTL + timedelta(seconds=1)
    monkeypatch.setattr(views, "now_utc", lambda: later)
    response = client.get(path, headers={"If-None-Match": etag})
    assert response.status_code == 200
    assert "Changed behind" in read_both(response.data)["events"][0]["summary"]


def test_http_kept_validators_follow_the_owners_roles(client, scene, feed_url):
    path = feed_url(scene.owner, "instrument", scene.instrument.id)
    etag = client.get(path).headers["ETag"]
    scene.owner.role_rows[0].role = "facility_manager"  # no audit row: the stamp has roles
    scene.facility.managers.append(scene.owner)
    db.session.commit()
    response = client.get(path, headers={"If-None-Match": etag})
    assert response.status_code == 200
    assert "Secret project X" in response.get_data(as_text=True)


def test_http_validators_move_once_a_day(app, scene):
    feed, _secret = services.create_feed(scene.owner, "user")
    now = now_utc()
    today = content.validators(feed, now)
    later_today = content.validators(feed, today.window.day + timedelta(hours=23))
    tomorrow = content.validators(feed, today.window.day + timedelta(days=1))
    assert later_today.etag == today.etag
    assert tomorrow.etag != today.etag
    assert tomorrow.last_modified > today.last_modified
