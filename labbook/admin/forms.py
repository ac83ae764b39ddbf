"""Forms of the administration pages and their conversion to the typed values the
services take (dates as ``date``, flags as ``bool``, money as a decimal string, empty
optional text as ``None``). Rules live in the services, not here."""
from __future__ import annotations

import re
from datetime import time
from typing import Any

import sqlalchemy as sa
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from labbook.auth.forms import LANGUAGE_CHOICES
from labbook.auth.models import ROLE_VALUES
from labbook.billing.models import CustomerClass
from labbook.extensions import db
from labbook.forms import BaseForm
from labbook.instruments.facilities import DEFAULT_TIMEZONE
from labbook.instruments.models import Platform
from labbook.teams.forms import MultiCheckboxField, centre_today
from labbook.teams.models import ACCOUNT_KINDS
from labbook.templating import ROLE_LABELS

ROLE_CHOICES = [SelectChoice(role, ROLE_LABELS[role]) for role in ROLE_VALUES]
KIND_LABELS = {
    "cost_centre": _l("Cost centre"),
    "grant": _l("Grant"),
    "purchase_order": _l("Purchase order"),
}
WEEKDAYS = (_l("Monday"), _l("Tuesday"), _l("Wednesday"), _l("Thursday"), _l("Friday"),
            _l("Saturday"), _l("Sunday"))


def _text_or_none(value: str | None) -> str | None:
    return value or None


class UserSearchForm(BaseForm):
    """The filters of the user list (GET, so no CSRF token)."""

    class Meta:
        csrf = False

    q = StringField(_l("Name or email"), validators=[Optional(), Length(max=254)])
    role = SelectField(_l("Role"), validators=[Optional()],
                       choices=[SelectChoice("", _l("Any role")), *ROLE_CHOICES])


class UserCreateForm(BaseForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    password = PasswordField(
        _l("Initial password"), validators=[DataRequired(), Length(max=200)],
        description=_l("At least 8 characters. Ask the user to change it after logging in."),
    )
    roles = MultiCheckboxField(_l("Roles"), choices=ROLE_CHOICES, default=["researcher"])
    locale = SelectField(_l("Language"), choices=LANGUAGE_CHOICES)


class UserEditForm(BaseForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    locale = SelectField(_l("Language"), choices=LANGUAGE_CHOICES)
    active = BooleanField(_l("Active (may log in)"))
    roles = MultiCheckboxField(_l("Roles"), choices=ROLE_CHOICES)
    new_password = PasswordField(
        _l("New password"), validators=[Optional(), Length(max=200)],
        description=_l("Leave empty to keep the current password."),
    )

    def values(self) -> dict[str, Any]:
        return {"name": self.name.data, "locale": self.locale.data,
                "active": bool(self.active.data), "roles": list(self.roles.data or [])}


class TeamForm(BaseForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    customer_class_code = SelectField(_l("Customer class"))
    invoice_title = StringField(_l("Invoice title"), validators=[Optional(), Length(max=200)])
    tax_id = StringField(_l("Tax ID"), validators=[Optional(), Length(max=64)])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        zh = str(get_locale() or "en").startswith("zh")
        classes = db.session.scalars(sa.select(CustomerClass).order_by(CustomerClass.code))
        self.customer_class_code.choices = [
            SelectChoice(c.code, (c.name_zh if zh and c.name_zh else c.name)) for c in classes
        ]

    def values(self) -> dict[str, Any]:
        return {"name": self.name.data, "customer_class_code": self.customer_class_code.data,
                "invoice_title": _text_or_none(self.invoice_title.data),
                "tax_id": _text_or_none(self.tax_id.data)}


class AccountForm(BaseForm):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=64)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    kind = SelectField(_l("Kind"), choices=[SelectChoice(k, KIND_LABELS[k]) for k in ACCOUNT_KINDS])
    valid_from = DateField(_l("Valid from"), validators=[InputRequired()], default=centre_today)
    valid_until = DateField(_l("Valid until"), validators=[Optional()],
                            description=_l("Leave empty for no end date."))
    spending_limit = StringField(_l("Spending limit"), validators=[Optional(), Length(max=20)],
                                 description=_l("An amount such as 50000.00; empty for no limit."))
    active = BooleanField(_l("Active"), default=True)
    is_default = BooleanField(_l("Default account of the team"))
    all_members = BooleanField(
        _l("Every member may charge it"), default=True,
        description=_l("Otherwise the team's leads choose who may, on the team page."),
    )

    def values(self) -> dict[str, Any]:
        return {
            "code": self.code.data, "name": self.name.data, "kind": self.kind.data,
            "valid_from": self.valid_from.data, "valid_until": self.valid_until.data,
            "spending_limit": _text_or_none(self.spending_limit.data),
            "active": bool(self.active.data), "is_default": bool(self.is_default.data),
            "all_members": bool(self.all_members.data),
        }


class FacilityForm(BaseForm):
    platform_id = SelectField(_l("Platform"), coerce=int)
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=40)])
    name = StringField(_l("Name (English)"), validators=[DataRequired(), Length(max=160)])
    name_zh = StringField(_l("Name (Chinese)"), validators=[Optional(), Length(max=160)])
    location = StringField(_l("Location"), validators=[Optional(), Length(max=200)])
    timezone = StringField(
        _l("Time zone"), validators=[DataRequired(), Length(max=64)], default=DEFAULT_TIMEZONE,
        description=_l("An IANA name such as Asia/Shanghai; bookings and opening hours use it."),
    )
    description = TextAreaField(_l("Description"), validators=[Optional(), Length(max=5000)])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        platforms = db.session.scalars(sa.select(Platform).order_by(Platform.name))
        self.platform_id.choices = [SelectChoice(p.id, p.name) for p in platforms]

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name).data for name in (
            "platform_id", "code", "name", "name_zh", "location", "timezone", "description")}


_INTERVAL = re.compile(r"(\d{1,2}):(\d{2})\s*[-–—~～至到]\s*(\d{1,2}):(\d{2})")
_SEPARATORS = re.compile(r"[,;，；、]")
MAX_INTERVALS_TEXT = 200


def _clock(hours: str, minutes: str) -> time | None:
    h, m = int(hours), int(minutes)
    return time(h, m) if h <= 23 and m <= 59 else None


class IntervalsField(StringField):
    """One weekday's staffed intervals, written ``08:30-12:00, 13:00-17:30`` (empty: closed).
    Its data is a list of (opens, closes) times; whether they make sense is the service's
    business."""

    def _value(self) -> str:
        if self.raw_data:
            return self.raw_data[0]
        return ", ".join(f"{o:%H:%M}-{c:%H:%M}" for o, c in self.data or [])

    def process_formdata(self, valuelist: list[str]) -> None:
        self.data = []
        text = valuelist[0] if valuelist else ""
        if len(text) > MAX_INTERVALS_TEXT:
            raise ValueError(_("At most %(n)d characters.", n=MAX_INTERVALS_TEXT))
        for part in _SEPARATORS.split(text):
            match = _INTERVAL.fullmatch(part.strip())
            if not part.strip():
                continue
            opens = closes = None
            if match:
                opens, closes = _clock(*match.group(1, 2)), _clock(*match.group(3, 4))
            if opens is None or closes is None:
                self.data = []
                raise ValueError(_("Write times as HH:MM and intervals as 08:30-12:00, "
                                   "13:00-17:30 (\"%(part)s\" is not one).", part=part.strip()))
            self.data.append((opens, closes))


class HoursForm(BaseForm):
    """The week's opening hours, one field per weekday (0 = Monday)."""

    day_0 = IntervalsField(WEEKDAYS[0])
    day_1 = IntervalsField(WEEKDAYS[1])
    day_2 = IntervalsField(WEEKDAYS[2])
    day_3 = IntervalsField(WEEKDAYS[3])
    day_4 = IntervalsField(WEEKDAYS[4])
    day_5 = IntervalsField(WEEKDAYS[5])
    day_6 = IntervalsField(WEEKDAYS[6])

    def days(self) -> list[IntervalsField]:
        return [getattr(self, f"day_{d}") for d in range(7)]

    def intervals(self) -> list[tuple[int, time, time]]:
        return [(d, o, c) for d, f in enumerate(self.days()) for o, c in f.data or []]
