"""The kinds of notification, and which of them carry the booking's ``.ics``.

A kind names an event; its parameters (stored with the notification) fill the message.
Users may switch mail off per kind on their preferences page; the in-app list shows all.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

# kind -> (label for the preferences page, attach the booking's .ics)
KINDS = {
    "booking_confirmed": (_l("Booking confirmed"), True),
    "booking_pending": (_l("Booking waiting for approval"), True),
    "booking_rejected": (_l("Booking rejected"), True),
    "booking_cancelled": (_l("Booking cancelled"), True),
    "booking_rescheduled": (_l("Booking changed"), True),
    "booking_expired": (_l("Booking expired without approval"), True),
    "approval_needed": (_l("A booking needs your approval"), False),
    "reminder": (_l("Booking reminder"), True),
    "no_show": (_l("Missed booking (no-show)"), False),
    "auto_checkout": (_l("Session closed automatically"), False),
    "waitlist_offer": (_l("Waitlist: a slot is free for you"), False),
    "waitlist_expired": (_l("Waitlist: offer expired"), False),
    "qualification_granted": (_l("Qualification granted"), False),
    "qualification_expiring": (_l("Qualification expiring soon"), False),
    "qualification_expired": (_l("Qualification expired"), False),
    "outage_affects_booking": (_l("Instrument unavailable during your booking"), True),
    "fault_reported": (_l("Fault reported on your instrument"), False),
    "fault_updated": (_l("A fault you follow changed status"), False),
    "statements_ready": (_l("Draft statements ready for month end"), False),
}


def carries_ics(kind: str) -> bool:
    return KINDS[kind][1]
