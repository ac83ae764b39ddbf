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

import http.client
import json
import os
import re
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from flask import Flask, jsonify, request
from flask.testing import FlaskClient
from flask_migrate import upgrade

from bench.bench_catalog import make_app, on_each_backend
from labbook.auth.services import create_token
from labbook.auth.security import public
from labbook.bookings.models import Booking, Reservation
from labbook.extensions import csrf, db
from tests import factories

MIN_SECONDS = float(os.environ.get("LABBOOK_BENCH_SECONDS", "1.0"))
HISTORY = [int(n) for n in os.environ.get("LABBOOK_BENCH_HISTORY",
                                          "1000,100000,1000000").split(",")]
HTTP_SECONDS = float(os.environ.get("LABBOOK_BENCH_HTTP_SECONDS", "5"))
CLIENTS = int(os.environ.get("LABBOOK_BENCH_CLIENTS", "16"))
CPUS = os.cpu_count() or 1
GUNICORN = os.environ.get("LABBOOK_BENCH_GUNICORN", f"--workers {CPUS} --worker-class sync")
APP_URL_ENV = "LABBOOK_BENCH_APP_URL"
ROOT = Path(__file__).resolve().parent.parent
SLOT = timedelta(minutes=15)
SAMPLES = 200  # creates timed per size of the history sweep
COLUMNS = ("kind", "instrument_id", "start_at", "end_at", "block_end", "state", "sequence",
           "created_at", "updated_at", "user_id", "team_id", "account_id", "purpose",
           "assisted", "buffer_minutes", "late_cancel")
PAST_STATES = ("completed",) * 17 + ("cancelled", "cancelled", "no_show")


@dataclass
class Scene:
    """Committed ids: instruments with one advanced-qualified booker and its token."""

    instrument_ids: list[int]
    user_id: int
    team_id: int
    account_id: int
    token: str
    next_start: dict[int, datetime] = field(default_factory=dict)

    def take(self, instrument_id: int) -> tuple[datetime, datetime]:
        """The next free 15-minute slot on the instrument (tomorrow onwards, in order)."""
        start = self.next_start.get(instrument_id) or _tomorrow()
        self.next_start[instrument_id] = start + SLOT
        return start, start + SLOT

    def body(self, instrument_id: int) -> dict[str, Any]:
        start, end = self.take(instrument_id)
        return {"instrument_id": instrument_id, "start": start.isoformat(),
                "end": end.isoformat(), "purpose": "bench", "account_id": self.account_id}

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _tomorrow() -> datetime:
    now = datetime.now(timezone.utc)
    return datetime(now.year, now.month, now.day, tzinfo=timezone.utc) + timedelta(days=1)


def make_scene(app: Flask, instruments: int) -> Scene:
    with app.app_context():
        facility = factories.make_facility()
        rows = [factories.make_instrument(facility) for _ in range(instruments)]
        user = factories.make_booker(rows[0], level="advanced")
        for instrument in rows[1:]:
            factories.make_qualification(user, instrument, level="advanced")
        account = user.memberships[0].team.default_account
        _, token = create_token(user, "bench")
        db.session.commit()
        return Scene([i.id for i in rows], user.id, account.team_id, account.id, token)


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
    anchor = _tomorrow() - timedelta(days=8)
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


# -- over HTTP: gunicorn, and a raw psycopg loop for comparison ------------------------------


def gunicorn_app() -> Flask:
    """The app gunicorn serves: ``gunicorn 'bench.bench_bookings:gunicorn_app()'``, with
    one extra route, the *floor*: ``POST /_bench/insert`` stores the posted slot as one
    ORM row and commits (no token, no checks, no audit, no notification). It is what any
    Flask + SQLAlchemy endpoint that writes a row costs on this machine, so ``floor / raw``
    bounds what the real create can reach."""
    app = make_app(os.environ[APP_URL_ENV])

    @public
    def insert() -> Any:
        body = request.get_json()
        start, end = (datetime.fromisoformat(body[k]) for k in ("start", "end"))
        row = Booking(instrument_id=body["instrument_id"], user_id=body["user_id"],
                      team_id=body["team_id"], account_id=body["account_id"],
                      start_at=start, end_at=end, block_end=end, state="confirmed",
                      sequence=0, purpose="floor", assisted=False, buffer_minutes=0)
        db.session.add(row)
        db.session.flush()
        answer = {"id": row.id}  # read before the commit expires the row
        db.session.commit()
        return jsonify(answer), 201

    app.add_url_rule("/_bench/insert", "bench_insert", csrf.exempt(insert), methods=["POST"])
    return app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(url: str, log: Path) -> tuple[subprocess.Popen, int]:
    """Serve the app on ``url``'s database; returns once the port accepts connections."""
    port = _free_port()
    command = [sys.executable, "-m", "gunicorn", *shlex.split(GUNICORN), "--bind",
               f"127.0.0.1:{port}", "bench.bench_bookings:gunicorn_app()"]
    with log.open("w") as stderr:
        process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, APP_URL_ENV: url},
                                   stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"gunicorn did not start:\n{log.read_text()[-2000:]}")


def concurrently(clients: int, seconds: float, work: Callable[[int, float], int]) -> float:
    """Run ``work(index, deadline)`` in ``clients`` threads started together; each returns
    how many operations it completed. Returns operations per second."""
    barrier = threading.Barrier(clients + 1)
    done = [0] * clients

    def worker(index: int) -> None:
        barrier.wait()
        done[index] = work(index, time.perf_counter() + seconds)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return sum(done) / (time.perf_counter() - started)


def http_creates(port: int, scene: Scene, errors: list[str],
                 path: str = "/api/v1/bookings") -> Callable[[int, float], int]:
    lock = threading.Lock()

    def work(index: int, deadline: float) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        instrument_id, count = scene.instrument_ids[index % len(scene.instrument_ids)], 0
        headers = {**scene.headers, "Content-Type": "application/json"}
        while time.perf_counter() < deadline:
            with lock:
                values = scene.body(instrument_id)
            if path != "/api/v1/bookings":  # the floor takes the row's owner as given
                values.update(user_id=scene.user_id, team_id=scene.team_id)
            body = json.dumps(values)
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            text = response.read()
            if response.status == 201:
                count += 1
            else:
                errors.append(f"{response.status} {text[:200]!r}")
        connection.close()
        return count

    return work


def raw_inserts(url: str, scene: Scene) -> Callable[[int, float], int]:
    """One INSERT of a whole booking row and a COMMIT per iteration, no checks at all."""
    conninfo = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(
        hide_password=False)
    placeholders = ", ".join(["%s"] * len(COLUMNS))
    sql = f"INSERT INTO reservations ({', '.join(COLUMNS)}) VALUES ({placeholders})"

    def work(index: int, deadline: float) -> int:
        instrument_id, count = scene.instrument_ids[index % len(scene.instrument_ids)], 0
        start = _tomorrow() + timedelta(days=200)  # clear of the API's bookings
        with psycopg.connect(conninfo) as connection:
            while time.perf_counter() < deadline:
                end = start + SLOT
                connection.execute(sql, ("booking", instrument_id, start, end, end, "confirmed",
                                         0, start, start, scene.user_id, scene.team_id,
                                         scene.account_id, "raw", False, 0, False))
                connection.commit()
                start, count = end, count + 1
        return count

    return work


def http_throughput(app: Flask, url: str) -> dict[str, Any]:
    """gunicorn with CLIENTS keep-alive clients (each on its own instrument), and on
    PostgreSQL the raw insert loop at the same concurrency."""
    scene = make_scene(app, CLIENTS)
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="labbook-gunicorn-") as tmp:
        process, port = start_gunicorn(url, Path(tmp) / "gunicorn.log")
        try:
            concurrently(CLIENTS, 0.5, http_creates(port, scene, errors))  # warm up workers
            rate = concurrently(CLIENTS, HTTP_SECONDS, http_creates(port, scene, errors))
            floor = concurrently(CLIENTS, HTTP_SECONDS,
                                 http_creates(port, scene, errors, "/_bench/insert"))
        finally:
            process.terminate()
            process.wait(timeout=30)
    result: dict[str, Any] = {"gunicorn": GUNICORN, "cpus": CPUS, "clients": CLIENTS,
                              "API creates/s": rate, "floor inserts/s": floor,
                              "API / floor": f"{rate / floor:.1%}", "errors": len(errors)}
    if errors:
        result["first error"] = errors[0]
    if url.startswith("postgresql"):
        raw = concurrently(CLIENTS, HTTP_SECONDS, raw_inserts(url, scene))
        result.update({"raw psycopg inserts/s": raw, "API / raw": f"{rate / raw:.1%}",
                       "floor / raw": f"{floor / raw:.1%}"})
    return result


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
