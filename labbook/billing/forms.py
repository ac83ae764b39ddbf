"""Forms of the finance pages (SPEC section 6). They only shape what a person typed; the
rules live in the billing services, whose ``ValidationError`` fields are attached back to
these forms with ``apply_errors`` so a refused form re-renders with its messages."""
from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField, DateField, IntegerField, SelectField, StringField, TextAreaField, TimeField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from labbook.forms import BaseForm


class CloseForm(BaseForm):
    """Close a period; ``force`` closes even with warnings on the checklist."""

    force = BooleanField(_l("Close even with warnings (they are recorded)"))


class AdjustmentForm(BaseForm):
    """Request an adjustment: a signed amount (credit negative) and why."""

    amount = StringField(_l("Amount (negative for a credit)"),
                         validators=[DataRequired(), Length(max=20)])
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(), Length(max=500)])


class DecisionForm(BaseForm):
    """Approve or reject a pending adjustment; a rejection needs a note."""

    note = StringField(_l("Note"), validators=[Optional(), Length(max=500)])


class RateForm(BaseForm):
    """A new rate row for an instrument or a consumable (``target`` = "i:<id>" / "c:<id>")."""

    target = SelectField(_l("Instrument or consumable"), validators=[DataRequired()])
    customer_class = SelectField(_l("Customer class"), validators=[DataRequired()])
    charge_type = SelectField(_l("Charge type"), validators=[DataRequired()])
    amount = StringField(_l("Amount"), validators=[DataRequired(), Length(max=20)])
    effective_from = DateField(_l("Effective from"), validators=[DataRequired()])
    note = StringField(_l("Note"), validators=[Optional(), Length(max=200)])
    publish = BooleanField(_l("Publish now (otherwise a draft)"))

    def values(self) -> dict[str, Any]:
        """The service's fields (labbook/billing/rates.py ``create_rate``)."""
        kind, _sep, ident = (self.target.data or "").partition(":")
        number = int(ident) if ident.isdigit() else None
        return {
            "instrument_id": number if kind == "i" else None,
            "consumable_id": number if kind == "c" else None,
            "customer_class": self.customer_class.data,
            "charge_type": "unit" if kind == "c" else self.charge_type.data,
            "amount": self.amount.data, "effective_from": self.effective_from.data,
            "note": self.note.data or "",
        }


class ClassForm(BaseForm):
    """A customer class; the code only when adding."""

    code = StringField(_l("Code"), validators=[Optional(), Length(max=32)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=80)])
    name_zh = StringField(_l("Chinese name"), validators=[Optional(), Length(max=80)])
    tax_rate = StringField(_l("Tax rate (fraction, e.g. 0.06)"),
                           validators=[DataRequired(), Length(max=10)])


class ConsumableForm(BaseForm):
    """A consumable sold by the unit at one facility."""

    facility_id = SelectField(_l("Facility"), coerce=int, validators=[DataRequired()])
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=64)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=160)])
    name_zh = StringField(_l("Chinese name"), validators=[Optional(), Length(max=160)])
    unit = StringField(_l("Unit"), default="unit", validators=[DataRequired(), Length(max=20)])


class ItemForm(BaseForm):
    """A usage item: a consumable ("c:<id>") or samples on an instrument ("i:<id>"),
    at a local date and time of the centre."""

    target = SelectField(_l("Consumable or instrument (samples)"), validators=[DataRequired()])
    account_id = SelectField(_l("Account"), coerce=int, validators=[DataRequired()])
    quantity = StringField(_l("Quantity"), validators=[DataRequired(), Length(max=20)])
    occurred_on = DateField(_l("Date"), validators=[DataRequired()])
    occurred_time = TimeField(_l("Time"), validators=[DataRequired()])
    note = StringField(_l("Note"), validators=[Optional(), Length(max=300)])


class PolicyForm(BaseForm):
    """An instrument's billing policy; the cap window is all three fields or none."""

    billing_basis = SelectField(_l("Bill by"), choices=[
        SelectChoice("booked", _l("booked time")), SelectChoice("actual", _l("actual time")),
        SelectChoice("max", _l("the longer of the two"))])
    billing_increment_minutes = IntegerField(
        _l("Increment (minutes)"), validators=[DataRequired(), NumberRange(1, 1440)])
    minimum_charge_minutes = IntegerField(
        _l("Minimum charge (minutes)"), validators=[Optional(), NumberRange(0, 10080)])
    cap_from = TimeField(_l("Cap window from"), validators=[Optional()])
    cap_to = TimeField(_l("Cap window to"), validators=[Optional()])
    cap_max_minutes = IntegerField(_l("Cap (maximum minutes)"),
                                   validators=[Optional(), NumberRange(1, 1440)])
    late_cancel_fraction = StringField(_l("Late-cancellation fraction"),
                                       validators=[DataRequired(), Length(max=10)])
    no_show_fraction = StringField(_l("No-show fraction"),
                                   validators=[DataRequired(), Length(max=10)])

    def values(self) -> dict[str, Any]:
        """The API field names ``update_policy`` takes (an empty cap window = no cap)."""
        parts = (self.cap_from.data, self.cap_to.data, self.cap_max_minutes.data)
        cap: Any = None
        if any(p is not None for p in parts):
            cap = {"from": f"{parts[0]:%H:%M}" if parts[0] else "",
                   "to": f"{parts[1]:%H:%M}" if parts[1] else "",
                   "max_minutes": parts[2]}
        return {
            "billing_basis": self.billing_basis.data,
            "billing_increment_minutes": self.billing_increment_minutes.data,
            "minimum_charge_minutes": self.minimum_charge_minutes.data or 0,
            "late_cancel_fraction": self.late_cancel_fraction.data,
            "no_show_fraction": self.no_show_fraction.data,
            "session_cap": cap,
        }
