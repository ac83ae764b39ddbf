"""Catalog forms: the GET filter form of the instrument list and the instrument editor.

Forms only parse and type the input (ints, bools, ids among the offered choices); the
rules of a coherent instrument live in ``labbook.instruments.services``.
"""
from __future__ import annotations

from typing import Any, Iterable

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from labbook.forms import BaseForm
from labbook.instruments.models import (
    INSTRUMENT_STATUSES,
    POLICY_FIELDS,
    Facility,
    Instrument,
    Platform,
    ResearchField,
)
from labbook.instruments.services import TEXT_LIMITS
from labbook.templating import display_name, status_label

QUERY_MAX = 200


def optional_int(value: Any) -> int | None:
    """Coerce a select value to an int id, with the empty "All" option as None.

    :raises ValueError: for anything that is not a whole number.
    """
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str) or not value.strip().lstrip("-").isdigit():
        raise ValueError(value)
    return int(value)


def optional_str(value: Any) -> str | None:
    """Coerce a select value to text, with the empty "All" option as None."""
    return None if value is None or value == "" else str(value)


def _all_option() -> SelectChoice:
    return SelectChoice("", str(_l("All")))


def _named_choices(rows: Iterable[Any]) -> list[SelectChoice]:
    return [SelectChoice(str(row.id), display_name(row)) for row in rows]


class CatalogFilterForm(BaseForm):
    """The catalog's GET filters. A value that fails here is reported and ignored, so a
    stale or hand-edited URL still shows a catalog instead of an error page."""

    class Meta:
        csrf = False  # a GET search form changes nothing

    q = StringField(_l("Search"), validators=[Length(max=QUERY_MAX)])
    field = SelectField(_l("Research field"), coerce=optional_int)
    platform = SelectField(_l("Platform"), coerce=optional_int)
    facility = SelectField(_l("Facility"), coerce=optional_int)
    category = SelectField(_l("Category"), coerce=optional_str)
    status = SelectField(_l("Status"), coerce=optional_str)

    FILTERS = ("q", "field", "platform", "facility", "category", "status")

    def set_choices(
        self,
        fields: Iterable[ResearchField],
        platforms: Iterable[Platform],
        facilities: Iterable[Facility],
        categories: Iterable[str],
    ) -> None:
        """Offer the catalog's current fields, platforms, facilities and categories."""
        self.field.choices = [_all_option(), *_named_choices(fields)]
        self.platform.choices = [_all_option(), *_named_choices(platforms)]
        self.facility.choices = [_all_option(), *_named_choices(facilities)]
        self.category.choices = [_all_option(), *(SelectChoice(c, c) for c in categories)]
        self.status.choices = [_all_option(),
                               *(SelectChoice(s, status_label(s)) for s in INSTRUMENT_STATUSES)]

    def filters(self) -> dict[str, Any]:
        """The valid filter values, keyed as ``search_instruments`` names them; a filter
        with errors is left out (call ``validate`` first)."""
        value = {name: (None if getattr(self, name).errors else getattr(self, name).data or None)
                 for name in self.FILTERS}
        return {
            "query": value["q"],
            "field_id": value["field"],
            "platform_id": value["platform"],
            "facility_id": value["facility"],
            "category": value["category"],
            "status": value["status"],
        }

    def url_args(self) -> dict[str, Any]:
        """The valid, non-empty filters as query arguments, for links that keep them."""
        return {name: getattr(self, name).data for name in self.FILTERS
                if not getattr(self, name).errors and getattr(self, name).data not in (None, "")}

    def ignored(self) -> list[tuple[str, str]]:
        """(label, message) for every filter that was ignored."""
        return [(str(getattr(self, name).label.text), getattr(self, name).errors[0])
                for name in self.FILTERS if getattr(self, name).errors]


def _text(label: Any, name: str, required: bool = False) -> StringField:
    first = DataRequired() if required else Optional()
    return StringField(label, validators=[first, Length(max=TEXT_LIMITS[name])])


def _minutes(label: Any, description: Any = "") -> IntegerField:
    return IntegerField(label, validators=[InputRequired()], description=description)


def policy_defaults() -> dict[str, Any]:
    """The model's column defaults (SPEC section 3), shown in the new-instrument form."""
    columns = Instrument.__table__.columns
    values = {name: columns[name].default.arg for name in POLICY_FIELDS
              if columns[name].default is not None}
    values["status"] = columns["status"].default.arg
    return values


class InstrumentForm(BaseForm):
    """Every editable attribute of an instrument, its booking policy included.

    Pass ``facilities`` (those the user may put an instrument in) and ``fields``."""

    name = _text(_l("Name"), "name", required=True)
    asset_code = _text(_l("Asset code"), "asset_code", required=True)
    category = _text(_l("Category"), "category", required=True)
    make = _text(_l("Make"), "make")
    model = _text(_l("Model"), "model")
    facility_id = SelectField(_l("Facility"), coerce=int, validators=[InputRequired()])
    location = _text(_l("Location"), "location")
    description = TextAreaField(
        _l("Description"), validators=[Optional(), Length(max=TEXT_LIMITS["description"])]
    )
    field_ids = SelectMultipleField(
        _l("Research fields"), coerce=int,
        validators=[DataRequired(message=_l("Choose at least one research field."))],
        widget=ListWidget(prefix_label=False), option_widget=CheckboxInput(),
    )
    status = SelectField(_l("Status"), validators=[InputRequired()])

    slot_minutes = _minutes(_l("Slot length (minutes)"),
                            _l("Bookings start and end on multiples of this."))
    min_minutes = _minutes(_l("Shortest booking (minutes)"))
    max_minutes = _minutes(_l("Longest booking (minutes)"))
    lead_minutes = _minutes(_l("Lead time (minutes)"),
                            _l("How long before the start a booking must be made."))
    horizon_days = _minutes(_l("Booking horizon (days)"),
                            _l("How far ahead bookings may be made."))
    buffer_minutes = _minutes(_l("Buffer after each booking (minutes)"))
    late_cancel_notice_hours = _minutes(_l("Cancellation notice (hours)"),
                                        _l("Later cancellations count as late."))
    no_show_grace_minutes = _minutes(_l("No-show grace (minutes)"),
                                     _l("Without check-in by then, the slot is released."))
    user_weekly_quota_minutes = IntegerField(
        _l("Weekly quota per user (minutes)"), validators=[Optional()],
        description=_l("Leave empty for no quota."))
    team_weekly_quota_minutes = IntegerField(
        _l("Weekly quota per team (minutes)"), validators=[Optional()],
        description=_l("Leave empty for no quota."))
    requires_approval = BooleanField(_l("Bookings need a manager's approval"))
    requires_qualification = BooleanField(_l("Only qualified users may book"))

    TEXT = tuple(TEXT_LIMITS)
    OTHER = ("facility_id", "field_ids", "status") + POLICY_FIELDS

    def __init__(self, *args: Any, facilities: Iterable[Facility] = (),
                 fields: Iterable[ResearchField] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.facility_id.choices = [
            SelectChoice(str(f.id), display_name(f), optgroup=display_name(f.platform))
            for f in sorted(facilities, key=lambda f: (f.platform_id, f.name))
        ]
        self.field_ids.choices = _named_choices(fields)
        self.status.choices = [SelectChoice(s, status_label(s)) for s in INSTRUMENT_STATUSES]

    def values(self) -> dict[str, Any]:
        """The typed values ``create_instrument``/``update_instrument`` take."""
        values: dict[str, Any] = {name: getattr(self, name).data or "" for name in self.TEXT}
        values.update({name: getattr(self, name).data for name in self.OTHER})
        values["requires_approval"] = bool(self.requires_approval.data)
        values["requires_qualification"] = bool(self.requires_qualification.data)
        values["field_ids"] = list(self.field_ids.data or [])
        return values
