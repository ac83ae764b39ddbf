"""Forms of the booking pages, and the conversions they need.

People enter times on the facility's wall clock; the engine works in aware UTC. The
conversion lives here (``local_to_utc``) so that views stay thin and a local time that does
not exist (the hour skipped when clocks spring forward) is refused with a field message
instead of being silently shifted. An ambiguous local time (the repeated hour in autumn)
means its first occurrence. Forms only parse and type the input; every booking rule lives
in ``labbook.bookings.services``.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional
from wtforms.validators import ValidationError as FieldError
from wtforms.widgets import CheckboxInput, ListWidget

from labbook.auth.models import User
from labbook.errors import ValidationError
from labbook.forms import BaseForm
from labbook.instruments.forms import optional_int, optional_str
from labbook.instruments.models import Instrument
from labbook.teams.forms import UserEmailForm
from labbook.teams.models import Account
from labbook.urls import safe_next

UTC = timezone.utc
MAX_ID = 2**31 - 1  # ids are INTEGER columns
LEVEL_LABELS = {"basic": _l("Basic"), "advanced": _l("Advanced (also outside staffed hours)")}
# Where a service's field name differs from the form's.
SERVICE_FIELDS = {
    "start": "start_time",
    "end": "end_time",
    "expires_at": "expires_on",
    "recurrence": "repeat",
    "recurrence.freq": "repeat",
    "recurrence.interval": "every",
    "recurrence.byweekday": "weekdays",
    "recurrence.count": "count",
    "recurrence.until": "until",
}
REPEAT_LABELS = {"none": _l("Does not repeat"), "daily": _l("Daily"), "weekly": _l("Weekly")}
MODE_LABELS = {
    "all_or_nothing": _l("Book all or nothing: nothing is booked unless every date is free"),
    "fit": _l("Book what fits: book the free dates and list the others"),
}
WEEKDAY_LABELS = (
    _l("Monday"), _l("Tuesday"), _l("Wednesday"), _l("Thursday"), _l("Friday"),
    _l("Saturday"), _l("Sunday"),
)
CANCEL_SCOPES = {
    "occurrence": _l("This booking only"),
    "following": _l("This and the following bookings of the series"),
    "series": _l("Every upcoming booking of the series"),
}


# -- conversions ------------------------------------------------------------------------------


def local_to_utc(day: date, clock: time, zone: ZoneInfo) -> datetime | None:
    """The aware UTC instant of wall-clock ``day clock`` in ``zone``; None when that local
    time does not exist (it falls in the gap of a daylight-saving change)."""
    local = datetime.combine(day, clock, tzinfo=zone)  # fold=0: an ambiguous time's first
    moment = local.astimezone(UTC)
    if moment.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        return None
    return moment


def parse_instant(value: str | None) -> datetime | None:
    """An ISO 8601 datetime WITH offset (``Z`` allowed) as aware UTC; None for anything
    else (missing, malformed or naive), so a bad link just leaves the form empty."""
    if not value or len(value) > 40:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace(" ", "+"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC)


def iso_z(moment: datetime) -> str:
    """Compact UTC ISO form for links (``2030-01-07T02:00:00Z``): no ``+`` to escape."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_day(value: str | None) -> date | None:
    """A ``YYYY-MM-DD`` date, or None when missing or malformed."""
    try:
        return date.fromisoformat(value) if value and len(value) == 10 else None
    except ValueError:
        return None


def default_length(instrument: Instrument) -> timedelta:
    """The length the booking form suggests: an hour, within the instrument's min and max
    and rounded up to its slot length."""
    minutes = min(max(instrument.min_minutes, 60), instrument.max_minutes)
    slot = instrument.slot_minutes
    return timedelta(minutes=-(-minutes // slot) * slot)


def chargeable_accounts(user: User) -> list[Account]:
    """Active accounts of the user's teams that the user may charge, team by team."""
    accounts = []
    for membership in sorted(user.memberships, key=lambda m: m.team.name.lower()):
        accounts += [a for a in membership.team.accounts if a.active and a.may_be_charged_by(user)]
    return accounts


def next_target(form: BaseForm, fallback: str) -> str:
    """The form's hidden ``next`` path when it is on this site, else ``fallback``."""
    field = getattr(form, "next", None)
    return safe_next(field.data if field is not None else None, fallback)


# -- booking times ----------------------------------------------------------------------------


class TimesForm(BaseForm):
    """A booking's interval on the facility's wall clock: a date, a start and an end time,
    and an end date only for bookings that end on a later day."""

    date = DateField(_l("Date"), validators=[InputRequired()])
    start_time = TimeField(_l("Start time"), validators=[InputRequired()])
    end_time = TimeField(
        _l("End time"),
        validators=[InputRequired()],
        description=_l("An end time before the start time means the next day."),
    )
    end_date = DateField(
        _l("End date"),
        validators=[Optional()],
        description=_l("Only for bookings that end on a later day; leave empty otherwise."),
    )

    def prefill(self, start: datetime, end: datetime, zone: ZoneInfo) -> None:
        """Show ``[start, end)`` (aware) as local date and times."""
        here, there = start.astimezone(zone), end.astimezone(zone)
        self.date.data, self.start_time.data = here.date(), here.time().replace(tzinfo=None)
        self.end_time.data = there.time().replace(tzinfo=None)
        overnight = there.date() == here.date() + timedelta(days=1) and there.time() < here.time()
        self.end_date.data = None if there.date() == here.date() or overnight else there.date()

    def interval(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """The entered interval as aware UTC datetimes (call after ``validate``).

        :raises ValidationError: when a local time does not exist in ``zone`` on that day,
            or the end equals the start.
        """
        day, begin, finish = self.date.data, self.start_time.data, self.end_time.data
        end_day = self.end_date.data or (day if finish > begin else day + timedelta(days=1))
        errors: dict[str, list[str]] = {}
        start = local_to_utc(day, begin, zone)
        end = local_to_utc(end_day, finish, zone)
        for name, moment in (("start_time", start), ("end_time", end)):
            if moment is None:
                errors[name] = [_skipped_message(zone)]
        if not errors and finish == begin and self.end_date.data is None:
            errors["end_time"] = [_("The end must be after the start.")]
        if errors:
            raise ValidationError(_("Please correct the times."), errors)
        assert start is not None and end is not None
        return start, end


def _skipped_message(zone: ZoneInfo) -> str:
    return _(
        "This local time does not exist on that day in %(zone)s (the clocks change); "
        "choose another time.",
        zone=zone.key,
    )


class BookingForm(TimesForm):
    """Book an instrument. Pass ``accounts`` (those the user may charge)."""

    purpose = TextAreaField(
        _l("Purpose"),
        validators=[Optional(), Length(max=500)],
        description=_l("What you will measure or make; managers see it."),
    )
    account_id = SelectField(_l("Account to charge"), coerce=int, validators=[InputRequired()])
    assisted = BooleanField(_l("Assisted session (staff operate the instrument)"))

    def __init__(self, accounts: list[Account], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.account_id.choices = [
            SelectChoice(a.id, f"{a.code} · {a.name} ({a.team.name})") for a in accounts
        ]
        if self.account_id.data is None and accounts:
            default = next((a for a in accounts if a.is_default), accounts[0])
            self.account_id.data = default.id


class RepeatMixin(BaseForm):
    """The "Repeat" fieldset of the booking form: the fields of a recurrence rule (see
    labbook/bookings/recurrence.py, which checks them) and what to do when some dates are
    taken."""

    repeat = SelectField(
        _l("Repeat"),
        choices=[SelectChoice(k, v) for k, v in REPEAT_LABELS.items()],
        default="none",
        validators=[Optional()],
    )
    every = IntegerField(
        _l("Every"),
        default=1,
        validators=[Optional(), NumberRange(min=1, max=52)],
        description=_l("1 = every day or week, 2 = every other one, …"),
    )
    weekdays = SelectMultipleField(
        _l("On these days (weekly)"),
        choices=[SelectChoice(n, label) for n, label in enumerate(WEEKDAY_LABELS)],
        coerce=int,
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
        validators=[Optional()],
        description=_l("Default: the day of the first booking."),
    )
    count = IntegerField(
        _l("Number of bookings"), validators=[Optional(), NumberRange(min=1, max=200)]
    )
    until = DateField(
        _l("Or until (date, inclusive)"),
        validators=[Optional()],
        description=_l("Give either a number of bookings or an end date."),
    )
    mode = RadioField(
        _l("If some dates are taken"),
        choices=[SelectChoice(k, v) for k, v in MODE_LABELS.items()],
        default="all_or_nothing",
        validators=[Optional()],
    )

    def rule(self) -> dict[str, Any] | None:
        """The recurrence rule entered, or None when the booking does not repeat (call
        after ``validate``; ``recurrence.parse_rule`` checks the values)."""
        if self.repeat.data == "none":
            return None
        rule: dict[str, Any] = {"freq": self.repeat.data, "interval": self.every.data or 1}
        if self.repeat.data == "weekly" and self.weekdays.data:
            rule["byweekday"] = list(self.weekdays.data)
        if self.count.data is not None:
            rule["count"] = self.count.data
        if self.until.data is not None:
            rule["until"] = self.until.data
        return rule


class SeriesBookingForm(BookingForm, RepeatMixin):
    """The booking form with its "Repeat" fieldset."""


class SlotSearchForm(BaseForm):
    """Find a slot: a GET form (changes nothing, so no CSRF token)."""

    class Meta:
        csrf = False

    minutes = IntegerField(
        _l("Length (minutes)"), default=60,
        validators=[InputRequired(), NumberRange(min=1, max=24 * 60)],
    )
    field = SelectField(_l("Research field"), coerce=optional_int, validators=[Optional()])
    category = SelectField(_l("Category"), coerce=optional_str, validators=[Optional()])
    facility = SelectField(_l("Facility"), coerce=optional_int, validators=[Optional()])
    from_date = DateField(_l("From"), validators=[Optional()])
    days = IntegerField(
        _l("Days to search"), default=14, validators=[Optional(), NumberRange(min=1, max=62)]
    )

    def set_choices(
        self, fields: list[SelectChoice], facilities: list[SelectChoice], categories: list[str]
    ) -> None:
        everything = SelectChoice("", str(_l("All")))
        self.field.choices = [everything, *fields]
        self.facility.choices = [everything, *facilities]
        self.category.choices = [everything, *(SelectChoice(c, c) for c in categories)]


class RescheduleForm(TimesForm):
    """New times for an existing booking."""


# -- actions ----------------------------------------------------------------------------------


class ActionForm(BaseForm):
    """A button that POSTs (approve, check in, check out): CSRF and where to go back to."""

    next = HiddenField()


class CancelForm(ActionForm):
    reason = StringField(_l("Reason (optional)"), validators=[Optional(), Length(max=500)])
    scope = RadioField(
        _l("Cancel"),
        choices=[SelectChoice(k, v) for k, v in CANCEL_SCOPES.items()],
        default="occurrence",
        validators=[Optional()],
    )


class RejectForm(ActionForm):
    reason = StringField(_l("Reason"), validators=[DataRequired(), Length(max=500)])


class BulkApproveForm(BaseForm):
    booking_ids = SelectMultipleField(
        _l("Bookings"),
        coerce=int,
        validate_choice=False,
        validators=[DataRequired(message=_l("Tick at least one booking."))],
    )

    def validate_booking_ids(self, field: SelectMultipleField) -> None:
        """:raises FieldError: for ids no booking can have (shown with the form)."""
        if any(not 0 < i <= MAX_ID for i in field.data or []):
            raise FieldError(_("Unknown booking."))


# -- qualifications ---------------------------------------------------------------------------


class GrantForm(UserEmailForm):
    """Qualify a user (by email) on an instrument, optionally until a local date."""

    level = SelectField(
        _l("Level"),
        choices=[SelectChoice(k, v) for k, v in LEVEL_LABELS.items()],
        validators=[InputRequired()],
    )
    expires_on = DateField(
        _l("Valid until (optional)"),
        validators=[Optional()],
        description=_l("The qualification lapses at the end of this day, local time."),
    )
    note = StringField(_l("Note (optional)"), validators=[Optional(), Length(max=500)])

    def expires_at(self, zone: ZoneInfo) -> datetime | None:
        """The end of the chosen local day (the next day's midnight) as aware UTC."""
        day = self.expires_on.data
        if day is None:
            return None
        return datetime.combine(day + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)


class QualificationRequestForm(BaseForm):
    message = TextAreaField(
        _l("Message to the facility (optional)"), validators=[Optional(), Length(max=1000)]
    )
