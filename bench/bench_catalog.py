"""Catalog throughput: the JSON API list and the HTML catalog page over the demo data plus
~2,000 extra instruments, as requests per second, SQL statements per request (counted with a
``before_cursor_execute`` listener) and the time relative to a trivial endpoint.

Runs on a temp SQLite file, and also on PostgreSQL when ``LABBOOK_BENCH_DATABASE_URL`` names
a server (a throw-away database is created there and dropped afterwards). Knobs:
``LABBOOK_BENCH_EXTRA`` (extra instruments, default 2000) and ``LABBOOK_BENCH_SECONDS``
(minimum measuring time per endpoint, default 1.0).
"""
from __future__ import annotations

import os
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade

from config import TestConfig
from labbook import create_app
from labbook.auth.security import public
from labbook.auth.services import create_token, find_user
from labbook.demo import DEMO_PASSWORD, seed_demo
from labbook.extensions import db
from labbook.instruments.models import Facility, Instrument, ResearchField, instrument_fields

EXTRA = int(os.environ.get("LABBOOK_BENCH_EXTRA", "2000"))
MIN_SECONDS = float(os.environ.get("LABBOOK_BENCH_SECONDS", "1.0"))
MIN_REQUESTS = 20
PG_ENV = "LABBOOK_BENCH_DATABASE_URL"
CATEGORIES = ("SEM", "XRD", "AFM", "Confocal", "LC-MS", "Probe station", "Sputter", "ICP-MS")
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


class StatementCounter:
    """Counts SQL statements sent to the database while attached."""

    def __init__(self, engine: sa.engine.Engine) -> None:
        self.engine = engine
        self.count = 0
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *args: Any) -> None:
        self.count += 1

    def close(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._seen)


def make_app(url: str) -> Flask:
    class BenchConfig(TestConfig):
        SQLALCHEMY_DATABASE_URI = url
        TESTING = False

    app = create_app(BenchConfig)

    @public
    def ping() -> str:
        return "ok"

    app.add_url_rule("/_bench/ping", "bench_ping", ping)
    return app


def add_instruments(count: int) -> None:
    """Bulk-insert ``count`` extra instruments spread over the demo facilities and fields."""
    facility_ids = db.session.scalars(sa.select(Facility.id).order_by(Facility.id)).all()
    field_ids = db.session.scalars(sa.select(ResearchField.id).order_by(ResearchField.id)).all()
    db.session.execute(sa.insert(Instrument), [
        {"facility_id": facility_ids[n % len(facility_ids)], "asset_code": f"BENCH-{n:05d}",
         "name": f"{CATEGORIES[n % len(CATEGORIES)]} unit {n:04d}",
         "category": CATEGORIES[n % len(CATEGORIES)], "make": "Benchmark Instruments",
         "model": f"B-{n % 97}", "location": "", "description": "", "status": "available"}
        for n in range(count)
    ])
    ids = db.session.scalars(sa.select(Instrument.id)
                             .where(Instrument.asset_code.like("BENCH-%"))
                             .order_by(Instrument.id)).all()
    links = [{"instrument_id": iid, "field_id": field_ids[n % len(field_ids)]}
             for n, iid in enumerate(ids)]
    links += [{"instrument_id": iid, "field_id": field_ids[(n + 1) % len(field_ids)]}
              for n, iid in enumerate(ids) if n % 3 == 0]
    db.session.execute(sa.insert(instrument_fields), links)
    db.session.commit()


def prepare(app: Flask) -> dict[str, Any]:
    """Migrate, seed, add the extra instruments; return what the requests need."""
    with app.app_context():
        upgrade()
        seed_demo()
        db.session.commit()
        add_instruments(EXTRA)
        _, secret = create_token(find_user("researcher@example.org"), "bench")
        db.session.commit()
        field_id = db.session.scalar(
            sa.select(ResearchField.id).where(ResearchField.code == "synbio"))
        total = db.session.scalar(sa.select(sa.func.count()).select_from(Instrument))
    return {"token": secret, "field_id": field_id, "total": total}


def logged_in_client(app: Flask) -> FlaskClient:
    client = app.test_client()
    token = CSRF_RE.search(client.get("/login").get_data(as_text=True))
    assert token, "no CSRF token on /login"
    response = client.post("/login", data={"email": "researcher@example.org",
                                           "password": DEMO_PASSWORD,
                                           "csrf_token": token.group(1)})
    assert response.status_code == 302, response.status_code
    return client


def measure(get: Callable[[], Any], counter: StatementCounter) -> dict[str, Any]:
    """Time ``get()`` for at least MIN_SECONDS and MIN_REQUESTS, after one warm-up call."""
    first = get()
    if first.status_code != 200:
        return {"status": first.status_code}
    counter.count, done, started = 0, 0, time.perf_counter()
    while True:
        response = get()
        assert response.status_code == 200, response.status_code
        done += 1
        elapsed = time.perf_counter() - started
        if elapsed >= MIN_SECONDS and done >= MIN_REQUESTS:
            break
    return {"requests/s": done / elapsed, "ms/request": 1000 * elapsed / done,
            "SQL/request": counter.count / done}


def endpoints(setup: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Label -> (path, uses the API token)."""
    field, last_page = setup["field_id"], max(1, -(-setup["total"] // 50))
    return {
        "trivial (ping)": ("/_bench/ping", False),
        "api list": ("/api/v1/instruments", True),
        "api field filter": (f"/api/v1/instruments?field={field}", True),
        "api search 'sem'": ("/api/v1/instruments?q=sem", True),
        "api last page": (f"/api/v1/instruments?page={last_page}&per_page=50", True),
        "html catalog": ("/", False),
        "html field filter": (f"/?field={field}", False),
        "html search 'sem'": ("/?q=sem", False),
        "html last page": (f"/?page={last_page}", False),
    }


def measure_backend(url: str) -> dict[str, Any]:
    app = make_app(url)
    setup = prepare(app)
    client = logged_in_client(app)
    headers = {"Authorization": f"Bearer {setup['token']}"}
    with app.app_context():
        engine = db.engine
    counter = StatementCounter(engine)
    rows: dict[str, dict[str, Any]] = {}
    try:
        for label, (path, api) in endpoints(setup).items():
            rows[label] = measure(
                lambda p=path, a=api: client.get(p, headers=headers if a else None), counter)
    finally:
        counter.close()
        engine.dispose()
    base = rows["trivial (ping)"].get("ms/request")
    for row in rows.values():
        if base and "ms/request" in row:
            row["x ping time"] = row["ms/request"] / base
    return {"instruments": setup["total"], "endpoints": rows}


@contextmanager
def pg_database(base_url: str) -> Iterator[str]:
    """A throw-away database on the server of ``base_url``, dropped afterwards."""
    url = sa.engine.make_url(base_url)
    name = f"labbook_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def on_each_backend(measure: Callable[[str], Any]) -> dict[str, Any]:
    """``measure(url)`` on a temp SQLite file, and on a throw-away PostgreSQL database when
    ``LABBOOK_BENCH_DATABASE_URL`` names a server."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="labbook-bench-") as tmp:
        results["sqlite"] = measure(f"sqlite:///{tmp}/bench.sqlite3")
    base = os.environ.get(PG_ENV)
    if base:
        with pg_database(base) as url:
            results["postgresql"] = measure(url)
    else:
        results["postgresql"] = f"skipped (set {PG_ENV} to a server URL to include it)"
    return results


def run() -> dict[str, Any]:
    return on_each_backend(measure_backend)
