"""Booking benchmarks (issue 3): creating bookings through the real API path.

* ``api (test client)``: ``POST /api/v1/bookings`` through Flask's test client, one
  instrument, back-to-back 15-minute slots: creates per second, latency, and the SQL
  statements one create sends (counted with a ``before_cursor_execute`` listener; target
  <= 8), listed one by one.
* ``history sweep``: create latency with 1k, 100k and 1M existing bookings on the
  instrument (bulk-loaded past rows: COPY on PostgreSQL, executemany on SQLite; ANALYZE
  afterwards, as autovacuum would). Target: 1M/1k <= 1.2.
* ``http``: the same POST over HTTP to gunicorn with 16 concurrent keep-alive clients, each
  on its own instrument; the *floor* (a bare Flask route that stores the posted slot as
  one ORM row, see ``gunicorn_app``) the same way; on PostgreSQL also a raw psycopg loop
  (one INSERT + COMMIT per row) at the same concurrency, and the API's rate as a fraction
  of it (target >= 25 %).

Runs on a temp SQLite file, and on PostgreSQL when ``LABBOOK_BENCH_DATABASE_URL`` names a
server (a throw-away database is created there and dropped). Knobs: ``LABBOOK_BENCH_SECONDS``
(minimum measuring time per figure, 1.0), ``LABBOOK_BENCH_HISTORY`` (sizes of the sweep,
``1000,100000,1000000``; scale the last one down on a slow machine),
``LABBOOK_BENCH_HTTP_SECONDS`` (5), ``LABBOOK_BENCH_CLIENTS`` (16) and
``LABBOOK_BENCH_GUNICORN`` (worker options; default one sync worker per CPU, which did
best on a 2-vCPU machine once a create cost eight statements and no mail rendering:
322 creates/s against 277 with two per CPU and 302 with gthread, 2 × 2 threads).
"""
from __future__ import annotations

import os
import re
import statistics
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade

from bench.bench_catalog import make_app, on_each_backend
from bench.booking_scene import COLUMNS, Scene, make_scene, tomorrow
from bench.bookings_http import http_throughput
from labbook.bookings.models import Reservation
from labbook.extensions import db

MIN_SECONDS = float(os.environ.get("LABBOOK_BENCH_SECONDS", "1.0"))
HISTORY = [int(n) for n in os.environ.get("LABBOOK_BENCH_HISTORY",
                                          "1000,100000,1000000").split(",")]
SAMPLES = 200  # creates timed per size of the history sweep
PAST_STATES = ("completed",) * 17 + ("cancelled", "cancelled", "no_show")


class Statements:
    """Collects the SQL statements sent while attached (``before_cursor_execute``)."""

    def __init__(self, engine: sa.engine.Engine) -> None:
        self.engine = engine
        self.seen: list[str] = []
        sa.event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        self.seen.append(statement)

    def close(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._record)


def short(statement: str) -> str:
    return re.sub(r"\s+", " ", statement).strip()[:110]


def post(client: FlaskClient, scene: Scene, instrument_id: int) -> Any:
    return client.post("/api/v1/bookings", json=scene.body(instrument_id), headers=scene.headers)


def timed_creates(client: FlaskClient, scene: Scene, instrument_id: int, count: int = 0,
                  seconds: float = 0.0) -> list[float]:
    """Create bookings back to back (at least ``count``, for at least ``seconds``); the
    latency of each in ms. :raises AssertionError: on any answer but 201."""
    latencies: list[float] = []
    started = time.perf_counter()
    while len(latencies) < count or time.perf_counter() - started < seconds:
        before = time.perf_counter()
        response = post(client, scene, instrument_id)
        latencies.append(1000 * (time.perf_counter() - before))
        assert response.status_code == 201, (response.status_code, response.get_json())
    return latencies


def api_throughput(app: Flask, scene: Scene) -> dict[str, Any]:
    """Creates per second through the test client, SQL per create, and one create's SQL."""
    client = app.test_client()
    instrument_id = scene.instrument_ids[0]
    timed_creates(client, scene, instrument_id, count=20)  # warm up
    with app.app_context():
        statements = Statements(db.engine)
    try:
        latencies = timed_creates(client, scene, instrument_id, count=50, seconds=MIN_SECONDS)
        per_create = len(statements.seen) / len(latencies)
        statements.seen.clear()
        timed_creates(client, scene, instrument_id, count=1)
        one = list(statements.seen)
    finally:
        statements.close()
    return {
        "creates/s": 1000 * len(latencies) / sum(latencies),
        "ms/create (median)": statistics.median(latencies),
        "SQL/create": per_create,
        "statements of one create": {f"{n:2d}": short(s) for n, s in enumerate(one, 1)},
    }


# -- latency against the size of the history ------------------------------------------------


def history_rows(scene: Scene, instrument_id: int, first: int, count: int) -> Iterator[tuple]:
    """Past bookings, one hour each, back to back going backwards from a week ago."""
    anchor = tomorrow() - timedelta(days=8)
    for k in range(first, first + count):
        start = anchor - timedelta(hours=k + 1)
        end = start + timedelta(hours=1)
        yield ("booking", instrument_id, start, end, end, PAST_STATES[k % len(PAST_STATES)], 1,
               start, end, scene.user_id, scene.team_id, scene.account_id, "history", False, 0,
               False)


def load_history(app: Flask, scene: Scene, instrument_id: int, first: int, count: int) -> None:
    """Bulk-insert ``count`` past bookings: COPY on PostgreSQL, executemany on SQLite."""
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            raw = db.engine.raw_connection()
            try:
                with raw.driver_connection.cursor() as cursor:
                    with cursor.copy(f"COPY reservations ({', '.join(COLUMNS)}) FROM STDIN") as cp:
                        for row in history_rows(scene, instrument_id, first, count):
                            cp.write_row(row)
                    cursor.execute("ANALYZE reservations")
                raw.commit()
            finally:
                raw.close()
            return
        rows = history_rows(scene, instrument_id, first, count)
        while chunk := [dict(zip(COLUMNS, row)) for _, row in zip(range(50_000), rows)]:
            db.session.execute(sa.insert(Reservation.__table__), chunk)
        db.session.commit()
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()


def history_sweep(app: Flask, scene: Scene) -> dict[str, Any]:
    """Create latency with HISTORY existing bookings on one instrument (fresh instrument,
    history added step by step)."""
    client = app.test_client()
    instrument_id = scene.instrument_ids[1]
    rows: dict[str, dict[str, Any]] = {}
    loaded = 0
    for size in HISTORY:
        started = time.perf_counter()
        load_history(app, scene, instrument_id, loaded, size - loaded)
        load_seconds, loaded = time.perf_counter() - started, size
        timed_creates(client, scene, instrument_id, count=10)  # warm up
        latencies = sorted(timed_creates(client, scene, instrument_id, count=SAMPLES))
        rows[f"{size:,} existing"] = {
            "ms median": statistics.median(latencies),
            "ms p90": latencies[int(0.9 * len(latencies))],
            "load s": load_seconds,
        }
    first = next(iter(rows.values()))["ms median"]
    for row in rows.values():
        row["x first"] = row["ms median"] / first
    return rows


# -- the harness entry point ----------------------------------------------------------------


def measure_backend(url: str) -> dict[str, Any]:
    app = make_app(url)
    with app.app_context():
        upgrade()
    scene = make_scene(app, 2)
    results = {"api (test client)": api_throughput(app, scene),
               "history sweep": history_sweep(app, scene),
               "http": http_throughput(app, url)}
    with app.app_context():
        db.engine.dispose()
    return results


def run() -> dict[str, Any]:
    return on_each_backend(measure_backend)
