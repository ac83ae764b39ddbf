"""Fetching a closure calendar by URL, within the size and time limits of the configuration
(``LABBOOK_IMPORT_MAX_BYTES``, ``LABBOOK_IMPORT_TIMEOUT``). The bytes it returns are read by
labbook/feeds/import_parse.py and imported by labbook/feeds/imports.py.
"""
from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from flask_babel import gettext as _

from labbook.feeds.import_parse import refuse

SCHEMES = ("http", "https")
NOT_CALENDARS = ("text/html", "application/xhtml+xml", "application/json", "application/pdf")


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) only (never file:, ftp: or data:)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        if urlsplit(newurl).scheme.lower() not in SCHEMES:
            raise refuse(_("The address redirects to something other than http or https."))
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def check_url(url: str) -> str:
    """The URL to fetch (webcal:// is read as https://).

    :raises ValidationError: for any other scheme or a URL without a host.
    """
    url = (url or "").strip()
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "webcal":
        url, parts = "https" + url[len(scheme):], urlsplit("https" + url[len(scheme):])
    elif scheme not in SCHEMES:
        raise refuse(_("Only http://, https:// and webcal:// addresses can be imported."))
    if not parts.hostname:
        raise refuse(_("The address has no host name."))
    return url


def _read(response: Any, limit: int) -> bytes:
    """:raises ValidationError: for a body over ``limit`` or one that is not a calendar."""
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise refuse(_("The calendar is too big (more than %(n)d KB).", n=limit // 1024))
    if response.headers.get_content_type() in NOT_CALENDARS:
        raise refuse(_("The address returned a %(type)s document, not a calendar.",
                       type=response.headers.get_content_type()))
    chunks, size = [], 0
    while size <= limit:
        chunk = response.read(min(65536, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise refuse(_("The calendar is too big (more than %(n)d KB).", n=limit // 1024))
    return b"".join(chunks)


def fetch_url(url: str) -> bytes:
    """Download a calendar: http(s) only, within ``LABBOOK_IMPORT_TIMEOUT`` seconds and
    ``LABBOOK_IMPORT_MAX_BYTES``; messages name the host, never the full URL (private
    calendar URLs carry secrets).

    :raises ValidationError: bad scheme, unreachable, an HTTP error, too big, or not a
        calendar.
    """
    url = check_url(url)
    host = urlsplit(url).hostname
    timeout = current_app.config["LABBOOK_IMPORT_TIMEOUT"]
    request = urllib.request.Request(url, headers={
        "User-Agent": "labbook closure import", "Accept": "text/calendar, */*;q=0.5"})
    try:
        with urllib.request.build_opener(_Redirects).open(request, timeout=timeout) as response:
            data = _read(response, current_app.config["LABBOOK_IMPORT_MAX_BYTES"])
    except urllib.error.HTTPError as error:
        error.close()
        if 300 <= error.code < 400:  # a redirect urllib itself refused (file:, data:...)
            raise refuse(_("The address redirects to something other than http or https.")) \
                from None
        raise refuse(_("%(host)s answered %(status)d %(reason)s.", host=host,
                       status=error.code, reason=error.reason)) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as error:
        reason = getattr(error, "reason", error)
        if isinstance(reason, TimeoutError):
            raise refuse(_("%(host)s did not answer within %(n)d seconds.", host=host,
                           n=int(timeout))) from None
        raise refuse(_("Could not reach %(host)s: %(reason)s", host=host,
                       reason=str(reason)[:200])) from None
    if not data.lstrip(b"\xef\xbb\xbf \t\r\n").upper().startswith(b"BEGIN:VCALENDAR"):
        raise refuse(_("The address did not return an iCalendar file."))
    return data
