"""Fetching a closure calendar by URL (labbook/feeds/import_fetch.py) from a real HTTP
server on loopback: a calendar is read and imports; other schemes, error answers, HTML and
other non-calendars, redirects away from http(s), answers that are too big, unreachable and
silent hosts are refused with a clear message, and no message repeats a secret URL."""
from __future__ import annotations

import socket

import pytest

from labbook.errors import ValidationError
from labbook.feeds import import_fetch, imports
from tests.feeds.import_support import _import


def test_fetch_url_reads_a_calendar_from_a_web_server(app, lab, site):
    facility, _instruments, manager = lab
    data = import_fetch.fetch_url(site.url("/holidays.ics"))
    assert b"national-day-2030" in data
    webcal = site.url("/holidays.ics").replace("http://", "webcal://")
    assert import_fetch.check_url(webcal).startswith("https://")
    assert _import(facility, manager, data).counts["created"] == 2


def _refused(url: str) -> str:
    with pytest.raises(ValidationError) as info:
        import_fetch.fetch_url(url)
    return info.value.message


def test_fetch_url_refuses_other_schemes(app):
    for url in ("ftp://example.org/x.ics", "file:///etc/passwd", "javascript:alert(1)",
                "data:text/calendar,BEGIN:VCALENDAR"):
        assert "Only http://, https:// and webcal://" in _refused(url)
    assert "no host" in _refused("http:///x.ics")


def test_fetch_url_explains_server_and_content_problems(app, site):
    site.routes["/page"] = (200, "text/html; charset=utf-8", b"<html>Holidays</html>", {})
    site.routes["/plain"] = (200, "text/plain", b"Holidays: Oct 1", {})
    site.routes["/away"] = (302, "text/plain", b"", {"Location": "file:///etc/passwd"})
    assert "127.0.0.1 answered 404" in _refused(site.url("/missing.ics"))
    assert "text/html document, not a calendar" in _refused(site.url("/page"))
    assert "did not return an iCalendar file" in _refused(site.url("/plain"))
    assert "redirects to something other than http" in _refused(site.url("/away"))


def test_fetch_url_refuses_too_big_answers(app, site):
    app.config["LABBOOK_IMPORT_MAX_BYTES"] = 100
    try:
        assert "too big" in _refused(site.url("/holidays.ics"))
    finally:
        app.config["LABBOOK_IMPORT_MAX_BYTES"] = 2 * 1024 * 1024


def test_fetch_url_reports_unreachable_and_silent_hosts(app):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert "Could not reach 127.0.0.1" in _refused(f"http://127.0.0.1:{port}/x.ics")
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        app.config["LABBOOK_IMPORT_TIMEOUT"] = 0.3
        try:
            message = _refused(f"http://127.0.0.1:{silent.getsockname()[1]}/x.ics")
        finally:
            app.config["LABBOOK_IMPORT_TIMEOUT"] = 10
    assert "did not answer within" in message or "Could not reach" in message


def test_error_messages_do_not_repeat_secret_urls(app, site):
    message = _refused(site.url("/private-token-s3cr3t/basic.ics"))
    assert "s3cr3t" not in message
    assert imports.safe_source("https://user:pw@cal.example/a/private-s3cr3t/basic.ics?k=1") \
        == "https://cal.example/…/basic.ics"
