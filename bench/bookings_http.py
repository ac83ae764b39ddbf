"""Booking creates over HTTP (bench_bookings.py's ``http`` figure): gunicorn serving the app
with CLIENTS keep-alive clients, each on its own instrument; the *floor*, a bare route that
stores one ORM row, measured the same way; and on PostgreSQL a raw psycopg insert loop at the
same concurrency, the yardstick of issue 3 (target: the API at >= 25 % of it)."""
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(url: str, log: Path) -> tuple[subprocess.Popen, int]:
    """Serve the app on ``url``'s database; returns once the port accepts connections."""
    port = _free_port()
    command = [sys.executable, "-m", "gunicorn", *shlex.split(GUNICORN), "--bind",
               f"127.0.0.1:{port}", "bench.bookings_http:gunicorn_app()"]
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
        raw = concurrently(CLIENTS, HTTP_SECONDS, raw_inserts(url, scene))
        result.update({"raw psycopg inserts/s": raw, "API / raw": f"{rate / raw:.1%}",
                       "floor / raw": f"{floor / raw:.1%}"})
    return result
