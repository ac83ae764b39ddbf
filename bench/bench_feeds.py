"""Calendar feed benchmarks (issue 5): a facility feed of 5,000 events.

* ``full render``: ``GET /feeds/<token>.ics`` through Flask's test client (token lookup,
  validators, one query for the rows, building and serializing with ``icalendar``), as a
  ratio to ``icalendar`` building and serializing the same 5,000 events alone (no database,
  no Flask: the events are read once beforehand). Target <= 1.5. Also shown: the ratio to
  ``Calendar.to_ical()`` of the already built calendar (serializing only).
* ``304``: the same GET with ``If-None-Match``, nothing rendered, as a ratio to a trivial
  endpoint (target <= 1.5): with the validators kept from the previous fetch (the steady
  state: one query for the token and the change marker, see labbook/feeds/fetch.py), and
  computed from the data (the first request of a process, or after a change: one
  aggregate over the 5,000 rows). For scale, also a trivial endpoint that runs
  ``SELECT 1`` through the session: the floor of any database-backed request (on
  PostgreSQL a pool check-out with its pre-ping, the query and the reset on return).

The feed's owner is a facility manager (names are shown, so the user join is used); the
events are spread over five instruments and the whole window, a tenth of them cancelled.
"SQL/request" counts statements seen by SQLAlchemy plus, on the 304 path, the token lookup,
which runs on the DBAPI connection directly (labbook/feeds/fetch.py).

Runs on a temp SQLite file, and on PostgreSQL when ``LABBOOK_BENCH_DATABASE_URL`` names a
server. Knobs: ``LABBOOK_BENCH_FEED_EVENTS`` (5000), ``LABBOOK_BENCH_FEED_RUNS`` (renders
timed, 5; the median counts) and ``LABBOOK_BENCH_SECONDS`` (measuring time of the 304 and
ping loops, 1.0).
"""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_babel import force_locale
from flask.testing import FlaskClient
from flask_migrate import upgrade

from bench.bench_catalog import StatementCounter, make_app, on_each_backend
from labbook.auth.security import public
from labbook.bookings.models import Reservation
from labbook.db import now_utc
from labbook.extensions import db
from labbook.feeds import content, fetch, ics, services
from labbook.feeds.models import CalendarFeed
from tests import factories

EVENTS = int(os.environ.get("LABBOOK_BENCH_FEED_EVENTS", "5000"))
RUNS = int(os.environ.get("LABBOOK_BENCH_FEED_RUNS", "5"))
MIN_SECONDS = float(os.environ.get("LABBOOK_BENCH_SECONDS", "1.0"))
INSTRUMENTS = 5
MIN_REQUESTS = 50


def prepare(app: Flask) -> str:
    """Migrate and load EVENTS bookings into one facility; return the feed's path."""
    with app.app_context():
        upgrade()
        facility = factories.make_facility(name="Bench facility")
        instruments = [factories.make_instrument(facility, name=f"SEM-{n:02d}")
                       for n in range(INSTRUMENTS)]
        manager = factories.make_user_with_role("facility_manager", facility=facility)
        bookers = [factories.make_booker(instruments[0]) for _ in range(20)]
        db.session.commit()
        db.session.execute(sa.insert(Reservation), list(_rows(instruments, bookers)))
        _feed, secret = services.create_feed(manager, "facility", facility.id)
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            db.session.execute(sa.text("ANALYZE"))
            db.session.commit()
    return f"/feeds/{secret}.ics"


def _rows(instruments: list, bookers: list) -> Any:  # type: ignore[type-arg]
    """EVENTS one-hour bookings from 50 days ago on, back to back per instrument."""
    start = datetime.combine(now_utc().date(), datetime.min.time(), timezone.utc) - timedelta(
        days=50)
    now = now_utc()
    for n in range(EVENTS):
        instrument = instruments[n % INSTRUMENTS]
        user = bookers[n % len(bookers)]
        account = user.memberships[0].team.default_account
        begin = start + timedelta(hours=2 * (n // INSTRUMENTS))
        yield {
            "kind": "booking", "instrument_id": instrument.id, "start_at": begin,
            "end_at": begin + timedelta(hours=1), "block_end": begin + timedelta(hours=1),
            "state": "cancelled" if n % 10 == 9 else "confirmed", "sequence": n % 4,
            "created_at": now, "updated_at": now, "state_changed_at": now,
            "user_id": user.id, "team_id": account.team_id, "account_id": account.id,
            "purpose": f"Sample series {n}: grain size, cross sections; 截面观察",
        }


def _median_ms(work: Callable[[], Any], runs: int) -> float:
    work()  # warm-up (caches, prepared statements)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def _rate_ms(get: Callable[[], Any], status: int) -> float:
    assert get().status_code == status
    done, started = 0, time.perf_counter()
    while True:
        assert get().status_code == status
        done += 1
        elapsed = time.perf_counter() - started
        if elapsed >= MIN_SECONDS and done >= MIN_REQUESTS:
            return 1000 * elapsed / done


def icalendar_alone(app: Flask, path: str) -> tuple[float, float, int]:
    """Build+serialize and serialize-only times (ms) of the feed's events, read once."""
    with app.test_request_context(), force_locale("en"):  # as the feed view renders
        feed = db.session.scalars(sa.select(CalendarFeed)).one()
        window = content.feed_window(now_utc())
        events = content.event_list(feed, window, "en")
        zones = {e.timezone for e in events}

        def build() -> Any:
            cal = ics.new_calendar("labbook — bench", refresh=timedelta(hours=1))
            ics.add_timezones(cal, zones, events[0].start_at.date(), window.end.date())
            cal.subcomponents.extend(ics.build_event(e, window.day) for e in events)
            return cal

        both = _median_ms(lambda: build().to_ical(), RUNS)
        built = build()
        serialize = _median_ms(built.to_ical, RUNS)
        del built
    return both, serialize, len(events)


def db_ping() -> str:
    """The least a database-backed endpoint does: one trivial query."""
    db.session.execute(sa.text("SELECT 1")).scalar()
    return "ok"


def measure_backend(url: str) -> dict[str, Any]:
    app = make_app(url)
    app.add_url_rule("/_bench/db-ping", "bench_db_ping", public(db_ping))
    path = prepare(app)
    client: FlaskClient = app.test_client()
    with app.app_context():
        engine = db.engine
    counter = StatementCounter(engine)
    try:
        full = _median_ms(lambda: client.get(path), RUNS)
        counter.count = 0
        body = client.get(path)
        full_sql = counter.count
        both, serialize, events = icalendar_alone(app, path)
        etag = body.headers["ETag"]
        counter.count = 0
        not_modified = _rate_ms(lambda: client.get(path, headers={"If-None-Match": etag}), 304)
        counter.count = 0
        client.get(path, headers={"If-None-Match": etag})
        cached_sql = counter.count

        def cold() -> Any:
            app.extensions.pop(fetch.EXTENSION, None)  # as the first request of a process
            return client.get(path, headers={"If-None-Match": etag})

        not_modified_cold = _rate_ms(cold, 304)
        counter.count = 0
        cold()
        cold_sql = counter.count
        ping = _rate_ms(lambda: client.get("/_bench/ping"), 200)
        db_ping_ms = _rate_ms(lambda: client.get("/_bench/db-ping"), 200)
    finally:
        counter.close()
        engine.dispose()
    return {
        "events": events,
        "bytes": len(body.data),
        "full render": {
            "ms": full, "icalendar build+serialize ms": both, "x icalendar": full / both,
            "icalendar serialize-only ms": serialize, "x serialize-only": full / serialize,
            "SQL/request": full_sql,
        },
        "304 path": {
            "kept validators": {"ms/request": not_modified, "x ping": not_modified / ping,
                                "SQL/request": cached_sql + 1},
            "computed validators": {"ms/request": not_modified_cold,
                                    "x ping": not_modified_cold / ping,
                                    "SQL/request": cold_sql + 1},
            "trivial (ping)": {"ms/request": ping, "x ping": 1.0, "SQL/request": 0},
            "trivial with SELECT 1": {"ms/request": db_ping_ms, "x ping": db_ping_ms / ping,
                                      "SQL/request": 1},
        },
    }


def run() -> dict[str, Any]:
    return on_each_backend(measure_backend)
