"""Render a notification as mail in the recipient's language: subject, plain text, HTML,
and the booking's ``.ics`` where the kind carries one.

(First version: subject and text from the messages below; the HTML part and per-kind
templates come with the mail delivery work.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask_babel import force_locale
from flask_babel import gettext as _

from labbook.db import now_utc
from labbook.notifications.kinds import KINDS, carries_ics

if TYPE_CHECKING:
    from labbook.auth.models import User
    from labbook.bookings.models import Reservation
    from labbook.notifications.models import Notification


@dataclass(frozen=True)
class Mail:
    subject: str
    text: str
    html: str | None = None
    ics: str | None = None
    ics_filename: str | None = None


def subject_for(note: Notification) -> str:
    """The one-line title of a notification (also the in-app list's text)."""
    params = {"instrument": "", "start": ""} | dict(note.params)
    return _("%(label)s: %(instrument)s, %(start)s", label=str(KINDS[note.kind][0]), **params)


def render_mail(user: User, note: Notification, reservation: Reservation | None) -> Mail:
    with force_locale(user.locale or "en"):
        subject = subject_for(note)
        text = subject + "\n"
        ics = filename = None
        if reservation is not None and carries_ics(note.kind):
            from labbook.feeds.ics import booking_ics

            ics = booking_ics(reservation, now=now_utc()).decode("utf-8")
            filename = f"booking-{reservation.id}.ics"
        return Mail(subject=subject, text=text, ics=ics, ics_filename=filename)
