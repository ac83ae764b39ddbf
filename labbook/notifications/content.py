"""The words of every notification, in the current locale: a one-line title per kind, the
mail's lead paragraphs, and detail rows, from the parameters recorded with the event.

Parameters may be missing or odd (old rows, other callers); nothing here fails because of
that: a missing moment reads as "—", a missing detail row is left out. Moments are written
the way the locale writes dates (CLDR via Babel, independent of the message catalog).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from babel.dates import format_skeleton
from flask import current_app
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import ngettext

if TYPE_CHECKING:
    from labbook.notifications.models import Notification

Values = dict[str, Any]
MISSING = "—"


# -- values --------------------------------------------------------------------------------


def _text(value: Any, limit: int = 300) -> str:
    if value is None or isinstance(value, (dict, list, bool)):
        return ""
    return str(value).strip()[:limit]


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or current_app.config["LABBOOK_TIMEZONE"])
    except (ValueError, KeyError):  # unknown or malformed zone name
        return ZoneInfo(current_app.config["LABBOOK_TIMEZONE"])


def _moment(text: str, tz: str) -> datetime | date | None:
    """A wall-clock datetime (in ``tz`` when the text has an offset), a date, or None."""
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(_zone(tz)).replace(tzinfo=None)
    return parsed


def when(value: Any, tz: str = "") -> str:
    """A moment from the parameters, written the way the current locale writes dates
    (``Mon, Jan 7, 2030 10:00``; ``2030年1月7日周一 10:00``). Params hold the facility's
    wall clock (``YYYY-MM-DD HH:MM``), an ISO time with offset, or a date; anything else
    is shown as it is."""
    text = _text(value, 100)
    moment = _moment(text, tz) if text else None
    locale = str(get_locale() or "en")
    if isinstance(moment, datetime):
        day = format_skeleton("yMMMEd", moment, locale=locale)
        return f"{day} {format_skeleton('Hm', moment, locale=locale)}"
    if isinstance(moment, date):
        return format_skeleton("yMMMd", moment, locale=locale)
    return text


def _lead_time(value: Any) -> str:
    """``offset_minutes`` as "in 24 hours" / "in 30 minutes"."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return _("soon")
    if value % 1440 == 0:
        return ngettext("in %(num)d day", "in %(num)d days", value // 1440)
    if value % 60 == 0:
        return ngettext("in %(num)d hour", "in %(num)d hours", value // 60)
    return ngettext("in %(num)d minute", "in %(num)d minutes", value)


def number(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


FAULT_STATUSES: dict[str, Callable[[], str]] = {
    "open": lambda: _("open"),
    "investigating": lambda: _("investigating"),
    "waiting_parts": lambda: _("waiting for parts"),
    "resolved": lambda: _("resolved"),
}
SEVERITIES: dict[str, Callable[[], str]] = {
    "cosmetic": lambda: _("cosmetic"),
    "degraded": lambda: _("degraded"),
    "down": lambda: _("down"),
}


def _fault_status(value: Any) -> str:
    make = FAULT_STATUSES.get(_text(value, 40))
    return make() if make is not None else _text(value, 40)


def _severity(value: Any) -> str:
    make = SEVERITIES.get(_text(value, 40))
    return make() if make is not None else _text(value, 40)


def values(params: Any) -> Values:
    """Every placeholder the messages use, filled (tolerantly) from ``params``."""
    p = params if isinstance(params, Mapping) else {}
    tz = _text(p.get("timezone"), 64)
    moments = ("start", "end", "old_start", "old_end", "first_start", "last_start",
               "offer_expires", "expires")
    filled: Values = {name: when(p.get(name), tz) or MISSING for name in moments}
    filled.update({
        "instrument": _text(p.get("instrument")) or _("an instrument"),
        "facility": _text(p.get("facility")),
        "timezone": tz,
        "reason": _text(p.get("reason"), 500),
        "count": number(p.get("count")),
        "lead_time": _lead_time(p.get("minutes_before", p.get("offset_minutes"))),
        "user": _text(p.get("user")),
        "fault_status": _fault_status(p.get("fault_status")) or MISSING,
        "month": _text(p.get("month"), 7) or _("the last month"),
    })
    return filled


# -- words per kind ------------------------------------------------------------------------

TITLES: dict[str, Callable[[Values], str]] = {
    "booking_confirmed": lambda v: _("Booking confirmed: %(instrument)s, %(start)s", **v),
    "booking_pending": lambda v: _("Awaiting approval: %(instrument)s, %(start)s", **v),
    "booking_rejected": lambda v: _("Booking rejected: %(instrument)s, %(start)s", **v),
    "booking_cancelled": lambda v: _("Booking cancelled: %(instrument)s, %(start)s", **v),
    "booking_rescheduled": lambda v: _("Booking changed: %(instrument)s, now %(start)s", **v),
    "booking_expired": lambda v: _("Booking expired unapproved: %(instrument)s, %(start)s",
                                   **v),
    "approval_needed": lambda v: _("Approval needed: %(instrument)s, %(start)s", **v),
    "reminder": lambda v: _("Reminder: %(instrument)s %(lead_time)s (%(start)s)", **v),
    "no_show": lambda v: _("Missed booking (no-show): %(instrument)s, %(start)s", **v),
    "auto_checkout": lambda v: _("Session closed automatically: %(instrument)s, %(start)s",
                                 **v),
    "waitlist_offer": lambda v: _("A slot is free for you: %(instrument)s, %(start)s", **v),
    "waitlist_expired": lambda v: _("Waitlist offer expired: %(instrument)s, %(start)s", **v),
    "qualification_granted": lambda v: _("Qualification granted: %(instrument)s", **v),
    "qualification_expiring": lambda v: _("Qualification expiring on %(expires)s: "
                                          "%(instrument)s", **v),
    "qualification_expired": lambda v: _("Qualification expired: %(instrument)s", **v),
    "outage_affects_booking": lambda v: _("%(instrument)s unavailable during your booking "
                                          "(%(start)s)", **v),
    "fault_reported": lambda v: _("Fault reported: %(instrument)s", **v),
    "fault_updated": lambda v: _("Fault on %(instrument)s: %(fault_status)s", **v),
    "statements_ready": lambda v: _("Draft statements for %(month)s are ready", **v),
}

LEADS: dict[str, Callable[[Values], list[str]]] = {
    "booking_confirmed": lambda v: [
        _("Your booking of %(instrument)s from %(start)s to %(end)s is confirmed.", **v)],
    "booking_pending": lambda v: [
        _("Your booking of %(instrument)s from %(start)s to %(end)s waits for a facility "
          "manager's approval. You will hear from us when it is decided.", **v)],
    "booking_rejected": lambda v: [
        _("Your booking request for %(instrument)s from %(start)s to %(end)s was "
          "rejected.", **v)],
    "booking_cancelled": lambda v: [
        _("Your booking of %(instrument)s from %(start)s to %(end)s was cancelled.", **v)],
    "booking_rescheduled": lambda v: [
        _("Your booking of %(instrument)s was moved. It now runs from %(start)s to %(end)s "
          "(before: %(old_start)s to %(old_end)s).", **v)],
    "booking_expired": lambda v: [
        _("Your booking request for %(instrument)s from %(start)s was not approved before "
          "its start and has expired. The time is free again.", **v)],
    "approval_needed": lambda v: [
        _("A booking of %(instrument)s from %(start)s to %(end)s waits for your "
          "approval.", **v)],
    "reminder": lambda v: [
        _("A reminder: your booking of %(instrument)s starts %(lead_time)s, at %(start)s, "
          "and ends at %(end)s. Please check in when you arrive.", **v)],
    "no_show": lambda v: [
        _("You did not check in to your booking of %(instrument)s (from %(start)s) in time. "
          "It was marked as a no-show and the rest of the slot was released; a no-show fee "
          "may apply.", **v)],
    "auto_checkout": lambda v: [
        _("The session on %(instrument)s booked from %(start)s to %(end)s was still open "
          "long after its end, so it was closed automatically at its booked end. A facility "
          "manager will review the recorded time.", **v)],
    "waitlist_offer": lambda v: [
        _("The time you are waiting for on %(instrument)s, from %(start)s to %(end)s, is "
          "free. It is offered to you until %(offer_expires)s; after that it goes to the "
          "next person waiting.", **v),
        _("The offer does not hold the slot: anyone may still book it until you accept.")],
    "waitlist_expired": lambda v: [
        _("Your offer for %(instrument)s, from %(start)s to %(end)s, expired without an "
          "answer and was passed on to the next person waiting.", **v)],
    "qualification_granted": lambda v: [
        _("You are now qualified to book %(instrument)s.", **v)],
    "qualification_expiring": lambda v: [
        _("Your qualification for %(instrument)s expires on %(expires)s. Ask the facility "
          "for a renewal to keep booking it.", **v)],
    "qualification_expired": lambda v: [
        _("Your qualification for %(instrument)s has expired. You cannot book it until the "
          "facility renews it.", **v)],
    "outage_affects_booking": lambda v: [
        _("%(instrument)s is not available during your booking from %(start)s to %(end)s "
          "(maintenance, repair or a closure).", **v)],
    "fault_reported": lambda v: [
        _("A fault was reported on %(instrument)s, which you look after.", **v)],
    "fault_updated": lambda v: [
        _("The fault reported on %(instrument)s on %(start)s is now: %(fault_status)s.", **v)],
    "statements_ready": lambda v: [
        _("The month %(month)s has ended. Its draft statements are up to date: review the "
          "pre-close checklist and close the period when it is clear.", **v)],
}


def title(note: Notification) -> str:
    """The notification's one-line title in the current locale (the viewer's, on a page;
    the recipient's, inside ``render_mail``)."""
    make = TITLES.get(note.kind)
    if make is None:  # a kind that no longer exists: still listable
        return note.kind
    return make(values(note.params))


def _series_line(p: Mapping[str, Any], v: Values) -> list[str]:
    if v["count"] < 1 or not (p.get("series_id") or v["count"] > 1):
        return []
    return [ngettext("This concerns a series of %(num)d booking: the first from "
                     "%(first_start)s, the last from %(last_start)s.",
                     "This concerns a series of %(num)d bookings: the first from "
                     "%(first_start)s, the last from %(last_start)s.", v["count"], **v)]


def _kind_lines(kind: str, p: Mapping[str, Any]) -> list[str]:
    """Further sentences some kinds get from their parameters."""
    if kind == "approval_needed" and p.get("reminder"):
        return [_("It is still undecided and starts soon; a pending booking expires at its "
                  "start.")]
    if kind == "outage_affects_booking":
        return _outage_lines(p)
    if kind == "qualification_expired" and number(p.get("upcoming_bookings")) > 0:
        return [ngettext("Your %(num)d upcoming booking of it stays.",
                         "Your %(num)d upcoming bookings of it stay.",
                         number(p.get("upcoming_bookings")))]
    return []


def _short_time(value: Any) -> str:
    """``2026-11-25T09:00:00+08:00`` → ``2026-11-25 09:00`` (the facility's clock)."""
    text = _text(value, 40)
    return text[:16].replace("T", " ") if len(text) >= 16 else text


def _outage_lines(p: Mapping[str, Any]) -> list[str]:
    lines = []
    if p.get("state") == "cancelled":
        lines.append(_("Your booking was therefore cancelled. You will not be charged for it."))
    offers = p.get("alternatives")
    if isinstance(offers, list) and offers:
        spans = [
            _("%(start)s to %(end)s", start=_short_time(o.get("start")),
              end=_short_time(o.get("end")))
            for o in offers[:3] if isinstance(o, Mapping)
        ]
        if spans:
            lines.append(_("Free times of the same length: %(times)s.", times="; ".join(spans)))
    return lines


def paragraphs(note: Notification) -> list[str]:
    """The mail's lead paragraphs in the current locale."""
    p = note.params if isinstance(note.params, Mapping) else {}
    v = values(p)
    make = LEADS.get(note.kind)
    lead = make(v) if make is not None else [title(note)]
    return lead + _series_line(p, v) + _kind_lines(note.kind, p)


OUTAGE_KINDS: dict[str, Callable[[], str]] = {
    "preventive": lambda: _("Preventive maintenance"),
    "repair": lambda: _("Repair"),
    "calibration": lambda: _("Calibration"),
    "closure": lambda: _("Closure"),
}
# Kinds whose reader is usually not the one who booked: they are told who did.
BOOKER_SHOWN = frozenset({"approval_needed", "auto_checkout", "fault_reported"})


def _state(p: Mapping[str, Any]) -> str:
    state = _text(p.get("state"), 40)
    if not state:
        return ""
    from labbook.bookings.labels import state_label  # (bookings imports this package)

    return state_label(state)


def _outage(p: Mapping[str, Any]) -> str:
    make = OUTAGE_KINDS.get(_text(p.get("outage_kind"), 40))
    kind = make() if make is not None else ""
    return ": ".join(part for part in (kind, _text(p.get("outage_title"), 200)) if part)


def details(note: Notification) -> list[tuple[str, str]]:
    """``(label, value)`` rows for what the parameters tell, in the current locale."""
    p = note.params if isinstance(note.params, Mapping) else {}
    v = values(p)
    given = {name: v[name] if p.get(name) else "" for name in (
        "start", "end", "offer_expires", "expires")}
    before = (_("%(old_start)s to %(old_end)s", **v)
              if p.get("old_start") and note.kind == "booking_rescheduled" else "")
    rows = [
        (_("Instrument"), _text(p.get("instrument"))),
        (_("Facility"), v["facility"]),
        (_("Start"), given["start"]),
        (_("End"), given["end"]),
        (_("Time zone"), v["timezone"]),
        (_("Before the change"), before),
        (_("State"), _state(p)),
        (_("Reason"), v["reason"]),
        (_("Unavailable for"), _outage(p)),
        (_("Booked by"), v["user"] if note.kind in BOOKER_SHOWN else ""),
        (_("Offer open until"), given["offer_expires"]),
        (_("Valid until"), given["expires"]),
        (_("Level"), _text(p.get("level"), 40)),
        (_("Severity"), _severity(p.get("severity"))),
        (_("Description"), _text(p.get("description"), 1000)),
        (_("Reported by"), _text(p.get("reporter"))),
        (_("Note"), _text(p.get("note"), 1000)),
        (_("Booking number"), _text(p.get("booking_id"), 20)),
    ]
    return [(label, value) for label, value in rows if value]
