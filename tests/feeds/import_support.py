"""Helpers shared by the closure-import tests (tests/feeds/test_imports.py,
test_import_parse.py, test_import_fetch.py): calendars built from VEVENT bodies, two sample
events, the import run at a fixed ``NOW``, queries on what it wrote, and ``Site``, a real
HTTP server on loopback to fetch calendars from. The ``lab`` and ``site`` fixtures are in
tests/feeds/conftest.py."""
from __future__ import annotations

import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.bookings.models import Outage, Reservation
from labbook.extensions import db
from labbook.feeds import imports
from labbook.notifications.models import Notification

UTC = timezone.utc
NOW = datetime(2030, 6, 1, tzinfo=UTC)


def ics(*events: str, method: str | None = None) -> bytes:
    """A calendar with ``events`` (VEVENT bodies, one property per line), CRLF-terminated."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//closures//EN"]
    if method:
        lines.append(f"METHOD:{method}")
    for body in events:
        lines += ["BEGIN:VEVENT", *[line.strip() for line in body.strip().splitlines()],
                  "END:VEVENT"]
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


NATIONAL_DAY = """
UID:national-day-2030@holidays.example
DTSTAMP:20300101T000000Z
SUMMARY:国庆节
DTSTART;VALUE=DATE:20301001
DTEND;VALUE=DATE:20301008
"""
BERLIN_VISIT = """
UID:berlin-service@vendor.example
DTSTAMP:20300101T000000Z
SUMMARY:Vendor service (Berlin time)
DTSTART;TZID=Europe/Berlin:20300715T090000
DTEND;TZID=Europe/Berlin:20300715T113000
"""


def _closures(facility, *where):
    db.session.expire_all()
    return db.session.scalars(
        sa.select(Outage).join(Outage.instrument)
        .where(Outage.external_uid.is_not(None), *where)
        .order_by(Outage.instrument_id, Outage.start_at)
    ).all()


def _count(model, *where) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def _import(facility, manager, data, **kw):
    return imports.import_closures(manager, facility, data, now=kw.pop("now", NOW), **kw)


def _snapshot():
    return (_count(Reservation), _count(AuditEntry), _count(Notification))


class Site:
    """A tiny HTTP server: ``routes`` maps a path to (status, content type, body, headers)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, str, bytes, dict[str, str]]] = {}
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                status, kind, body, headers = routes.get(
                    self.path, (404, "text/plain", b"not found", {}))
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
