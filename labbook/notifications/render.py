"""Render a notification as mail in the recipient's language (subject, plain text, HTML,
and the booking's ``.ics`` where the kind carries one), and the link back to the page it
is about. The words are in ``content.py`` (``title`` is re-exported here for the in-app
list, rendered at display time in the viewer's language); ``templates/mail/`` holds the
layout: ``notification.html`` (autoescaped, extending ``_layout.html``) and
``notification.txt`` for the plain part. Links use ``LABBOOK_BASE_URL``.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import current_app
from flask_babel import force_locale, get_locale
from flask_babel import gettext as _
from werkzeug.routing import BuildError

from labbook.notifications.content import details, number, paragraphs, title
from labbook.notifications.kinds import KINDS, carries_ics

if TYPE_CHECKING:
    from labbook.auth.models import User
    from labbook.bookings.models import Reservation
    from labbook.notifications.models import Notification

log = logging.getLogger(__name__)
TEXT_WIDTH = 76
BOOKING_KINDS = frozenset(k for k in KINDS if k.startswith("booking_")) | {
    "approval_needed", "reminder", "no_show", "auto_checkout", "outage_affects_booking"}


@dataclass(frozen=True)
class Mail:
    subject: str
    text: str
    html: str | None = None
    ics: str | None = None
    ics_filename: str | None = None


def subject_for(note: Notification) -> str:
    """Kept for older callers: the title in the current locale."""
    return title(note)


# -- links ---------------------------------------------------------------------------------


def _build(endpoint: str, **args: Any) -> str | None:
    try:
        return current_app.url_map.bind("localhost").build(endpoint, args)
    except BuildError:
        return None


def link_path(note: Notification) -> str | None:
    """The page a notification is about, as a path on this site: ``params["path"]`` when a
    caller gave one, else the booking, else the instrument."""
    p = note.params if isinstance(note.params, Mapping) else {}
    path = p.get("path")
    if isinstance(path, str) and path.startswith("/") and not path.startswith("//"):
        return path
    booking_id = note.reservation_id or number(p.get("booking_id"))
    if booking_id and note.kind in BOOKING_KINDS:
        return _build("bookings.detail", booking_id=booking_id)
    instrument_id = p.get("instrument_id")
    if isinstance(instrument_id, int) and not isinstance(instrument_id, bool):
        return _build("instruments.detail", instrument_id=instrument_id)
    return None


def absolute(path: str) -> str:
    return current_app.config["LABBOOK_BASE_URL"].rstrip("/") + path


def _link_label(note: Notification, path: str | None) -> str:
    if path and path.startswith("/bookings/"):
        return _("Open the booking")
    if path and path.startswith("/instruments/"):
        return _("Open the instrument's page")
    return _("Open labbook")


# -- the mail ------------------------------------------------------------------------------


def _ics(note: Notification, reservation: Reservation | None) -> tuple[str | None, str | None]:
    """The booking's calendar entry as an iTIP PUBLISH (``METHOD`` matches the MIME
    ``method`` parameter; PUBLISH requires an ORGANIZER: the facility, by the sender
    address). A failure here must not undo the booking change: it is logged and the mail
    goes without the attachment."""
    if reservation is None or not carries_ics(note.kind):
        return None, None
    try:
        from labbook.feeds.ics import new_calendar, reservation_event, to_bytes

        event = reservation_event(reservation, show_details=True, now=note.created_at)
        sender = current_app.config["LABBOOK_SMTP_SENDER"]
        event.add("organizer", f"mailto:{sender}",
                  parameters={"CN": reservation.instrument.facility.name})
        cal = new_calendar(reservation.instrument.name)
        cal.add("method", "PUBLISH")
        cal.add_component(event)
        return to_bytes(cal).decode("utf-8"), f"booking-{reservation.id}.ics"
    except Exception:  # noqa: BLE001 - see the docstring
        log.exception("could not build the .ics of reservation %s", reservation.id)
        return None, None


def _context(user: User, note: Notification) -> dict[str, Any]:
    path = link_path(note)
    prefs = _build("notifications.preferences") or "/notifications/preferences"
    base = current_app.config["LABBOOK_BASE_URL"].rstrip("/")
    return {
        "lang": "zh-Hans" if str(get_locale()) == "zh_Hans" else "en",
        "subject": title(note),
        "greeting": _("Hello %(name)s,", name=user.name),
        "paragraphs": paragraphs(note),
        "details": details(note),
        "link": absolute(path) if path else None,
        "link_label": _link_label(note, path),
        "footer": _("This message was sent by labbook at %(site)s.", site=base),
        "prefs_label": _("Choose which notifications you get by mail"),
        "prefs_url": absolute(prefs),
    }


def _wrap(paragraph: str) -> str:
    return textwrap.fill(paragraph, TEXT_WIDTH, break_long_words=False, break_on_hyphens=False)


def render_mail(user: User, note: Notification, reservation: Reservation | None) -> Mail:
    """The mail for ``note`` in ``user``'s language (``en`` when unknown)."""
    locale = user.locale if user.locale in current_app.config["LANGUAGES"] else "en"
    with force_locale(locale):
        context = _context(user, note)
        env = current_app.jinja_env
        html = env.get_template("mail/notification.html").render(**context)
        context["paragraphs"] = [_wrap(p) for p in context["paragraphs"]]
        text = env.get_template("mail/notification.txt").render(**context)
        ics, filename = _ics(note, reservation)
    subject = " ".join(context["subject"].split())  # never a line break in a header
    return Mail(subject=subject, text=text, html=html, ics=ics, ics_filename=filename)
