"""Booking creates over HTTP (bench_bookings.py's ``http`` figure): gunicorn serving the app
with CLIENTS keep-alive clients, each on its own instrument; the *floor*, a bare route that
stores one ORM row, measured the same way; and on PostgreSQL a raw psycopg insert loop at the
same concurrency, the yardstick of issue 3 (target: the API at >= 25 % of it), next to a bare
Flask app running a checked booking's eight statements as plain SQL (``bare_app``)."""
from __future__ import annotations

import http.client
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from flask import Flask, jsonify, request

from bench.bench_catalog import make_app
from bench.booking_scene import COLUMNS, SLOT, Scene, make_scene, tomorrow
from labbook.auth.security import public
from labbook.bookings.models import Booking
from labbook.extensions import csrf, db

HTTP_SECONDS = float(os.environ.get("LABBOOK_BENCH_HTTP_SECONDS", "5"))
CLIENTS = int(os.environ.get("LABBOOK_BENCH_CLIENTS", "16"))
CPUS = os.cpu_count() or 1
GUNICORN = os.environ.get("LABBOOK_BENCH_GUNICORN", f"--workers {CPUS} --worker-class sync")
APP_URL_ENV = "LABBOOK_BENCH_APP_URL"
ROOT = Path(__file__).resolve().parent.parent


def gunicorn_app() -> Flask:
    """The app gunicorn serves: ``gunicorn 'bench.bookings_http:gunicorn_app()'``, with
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


# The statements a checked booking needs, as plain SQL (PostgreSQL): what ``bare_app`` runs.
BARE_SQL = (
    ("SELECT id, user_id, revoked_at FROM api_tokens WHERE token_hash = %(token)s", True),
    ("SELECT * FROM instruments WHERE id = %(instrument_id)s", True),
    ("SELECT * FROM accounts WHERE id = %(account_id)s", True),
    ("SELECT pg_advisory_xact_lock(19522, %(instrument_id)s)", True),
    ("SELECT id FROM reservations WHERE instrument_id = %(instrument_id)s AND state IN "
     "('pending', 'confirmed', 'in_use') AND block_end > %(start)s AND start_at < %(end)s", True),
    ("INSERT INTO reservations (kind, instrument_id, start_at, end_at, block_end, state, "
     "sequence, created_at, updated_at, user_id, team_id, account_id, purpose, assisted, "
     "buffer_minutes, late_cancel) VALUES ('booking', %(instrument_id)s, %(start)s, %(end)s, "
     "%(end)s, 'confirmed', 0, now(), now(), %(user_id)s, %(team_id)s, %(account_id)s, "
     "'bare', false, 0, false) RETURNING id", True),
    ("INSERT INTO audit_log (at, actor_id, action, object_type, object_id) VALUES "
     "(now(), %(user_id)s, 'booking.create', 'Booking', 'bare')", False),
    ("INSERT INTO notifications (user_id, kind, params, created_at, mail_pending) VALUES "
     "(%(user_id)s, 'booking_confirmed', '{}', now(), true)", False),
)


def bare_app() -> Flask:
    """A bare Flask app, not labbook: ``POST /create`` runs the eight statements of
    ``BARE_SQL`` on one psycopg connection per worker and commits, with no ORM, no token
    check, no rules, no schema. It is the most any Flask endpoint doing a checked booking's
    round trips can reach on this machine (PostgreSQL only)."""
    bare = Flask("bare")
    connection: list[psycopg.Connection] = []
    conninfo = sa.engine.make_url(os.environ[APP_URL_ENV]).set(
        drivername="postgresql").render_as_string(hide_password=False)

    @bare.post("/create")
    def create() -> Any:
        if not connection:
            connection.append(psycopg.connect(conninfo))
        values = {**request.get_json(), "token": "bench"}
        with connection[0].cursor() as cursor:
            for sql, answers in BARE_SQL:
                cursor.execute(sql, values)
                if answers:
                    cursor.fetchall()
        connection[0].commit()
        return jsonify({}), 201

    return bare


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(url: str, log: Path, target: str = "gunicorn_app()"
                   ) -> tuple[subprocess.Popen, int]:
    """Serve ``target`` (a factory of this module) on ``url``'s database; returns once the
    port accepts connections."""
    port = _free_port()
    command = [sys.executable, "-m", "gunicorn", *shlex.split(GUNICORN), "--bind",
               f"127.0.0.1:{port}", f"bench.bookings_http:{target}"]
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
        start = tomorrow() + timedelta(days=200)  # clear of the API's bookings
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
        bare = _served(url, "bare_app()", scene, errors, "/create")
        raw = concurrently(CLIENTS, HTTP_SECONDS, raw_inserts(url, scene))
        result.update({"bare Flask, 8 raw statements/s": bare,
                       "raw psycopg inserts/s": raw, "API / raw": f"{rate / raw:.1%}",
                       "floor / raw": f"{floor / raw:.1%}", "bare / raw": f"{bare / raw:.1%}"})
    return result


def _served(url: str, target: str, scene: Scene, errors: list[str], path: str) -> float:
    """Creates per second of ``target`` served by gunicorn, warmed up first."""
    with tempfile.TemporaryDirectory(prefix="labbook-gunicorn-") as tmp:
        process, port = start_gunicorn(url, Path(tmp) / "gunicorn.log", target)
        try:
            concurrently(CLIENTS, 0.5, http_creates(port, scene, errors, path))
            return concurrently(CLIENTS, HTTP_SECONDS, http_creates(port, scene, errors, path))
        finally:
            process.terminate()
            process.wait(timeout=30)
