"""Consumables, usage items and instrument billing policies (routes attach to
``labbook.billing.bp``; imported by labbook/billing/views_rates.py).

Finance and the managers of a facility add its consumables; only the facility's managers
(and admins) record and remove usage items, and only while their period is open; the
billing policy of an instrument belongs to its facility's managers, not to finance.
Item times are entered on the centre's wall clock.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from wtforms.fields.choices import SelectChoice

from labbook.auth.guards import authorize
from labbook.billing import bp
from labbook.billing.forms import ConsumableForm, ItemForm, PolicyForm
from labbook.billing.items import create_consumable, delete_item, items_of, record_item
from labbook.billing.models import Consumable, UsageItem
from labbook.billing.periods import centre_zone
from labbook.billing.policy import policy_of, policy_to_dict, update_policy
from labbook.bookings.forms import local_to_utc
from labbook.bookings.views import load
from labbook.errors import LabbookError, ValidationError
from labbook.extensions import db
from labbook.instruments.models import Facility, Instrument
from labbook.teams.models import Account, Team


def _facilities() -> list[Facility]:
    """The facilities the current user may add consumables for."""
    rows = db.session.scalars(sa.select(Facility).order_by(Facility.name)).all()
    if current_user.is_finance:
        return list(rows)
    return [f for f in rows if current_user.manages_facility(f)]


@bp.route("/billing/consumables", methods=["GET", "POST"])
def consumables() -> Any:
    """List and add consumables (finance: any facility; managers: their facilities)."""
    authorize(current_user.is_finance or current_user.manages_any_facility(),
              _("Only finance and facility managers manage consumables."))
    form = ConsumableForm()
    form.facility_id.choices = [SelectChoice(f.id, f.name) for f in _facilities()]
    status = 200
    if form.is_submitted():
        status = 422
        if form.validate():
            try:
                create_consumable(current_user, {k: form[k].data for k in (
                    "facility_id", "code", "name", "name_zh", "unit")})
            except ValidationError as error:
                db.session.rollback()
                form.apply_errors(error.fields)
            else:
                db.session.commit()
                flash(_("Consumable added."), "success")
                return redirect(url_for("billing.consumables"))
    rows = db.session.scalars(sa.select(Consumable).order_by(Consumable.name)).all()
    return render_template("billing/consumables.html", form=form, rows=rows), status


def _managed_ids() -> set[int]:
    """The facilities the current user manages (all of them for an admin)."""
    rows = db.session.scalars(sa.select(Facility.id)).all()
    return {f for f in rows if current_user.manages_facility(f)}


def _item_choices(form: ItemForm, facility_ids: set[int]) -> None:
    """What may be recorded: the facilities' active consumables and their instruments
    (samples), on any team's account."""
    consumables = db.session.scalars(sa.select(Consumable).where(
        Consumable.facility_id.in_(facility_ids), Consumable.active.is_(True))
        .order_by(Consumable.name))
    instruments = db.session.scalars(sa.select(Instrument).where(
        Instrument.facility_id.in_(facility_ids)).order_by(Instrument.name))
    form.target.choices = (
        [SelectChoice(f"c:{c.id}", f"{c.name} ({c.unit})") for c in consumables]
        + [SelectChoice(f"i:{i.id}", _("Samples on %(name)s", name=i.name))
           for i in instruments])
    accounts = db.session.execute(sa.select(Account.id, Account.code, Team.name).join(
        Team, Team.id == Account.team_id).order_by(Team.name, Account.code))
    form.account_id.choices = [SelectChoice(a.id, f"{a.name} · {a.code}") for a in accounts]


def _item_values(form: ItemForm) -> dict[str, Any]:
    """The service's fields; a wall-clock time that does not exist is refused."""
    kind, _sep, ident = (form.target.data or "").partition(":")
    moment = local_to_utc(form.occurred_on.data, form.occurred_time.data, centre_zone())
    if moment is None:
        raise ValidationError(_("The usage item was not saved."), {
            "occurred_time": [_("This time does not exist on this day (clock change).")]})
    return {"consumable_id": int(ident) if kind == "c" and ident.isdigit() else None,
            "instrument_id": int(ident) if kind == "i" and ident.isdigit() else None,
            "account_id": form.account_id.data, "quantity": form.quantity.data,
            "occurred_at": moment, "note": form.note.data or ""}


def _recent_items(facility_ids: set[int]) -> list[UsageItem]:
    """The latest 50 items of these facilities, newest first."""
    return list(db.session.scalars(items_of(facility_ids).limit(50)))


@bp.route("/billing/items/new", methods=["GET", "POST"])
def new_item() -> Any:
    """Record consumables sold or samples measured (managers of the facility)."""
    facility_ids = _managed_ids()
    authorize(bool(facility_ids), _("Only facility managers record usage."))
    form = ItemForm()
    _item_choices(form, facility_ids)
    status = 200
    if form.is_submitted():
        status = 422
        if form.validate():
            try:
                record_item(current_user, _item_values(form))
            except LabbookError as error:
                db.session.rollback()
                form.apply_errors(getattr(error, "fields", None) or {
                    "occurred_on": [error.message]})
                status = error.status
            else:
                db.session.commit()
                flash(_("Usage recorded."), "success")
                return redirect(url_for("billing.new_item"))
    return render_template("billing/items.html", form=form, zone=centre_zone(),
                           items=_recent_items(facility_ids)), status


@bp.route("/billing/items/<int:item_id>/delete", methods=["POST"])
def remove_item(item_id: int) -> Any:
    """Remove a usage item while its period is open (refusals are flashed)."""
    item = load(UsageItem, item_id, _("No such usage item."))
    try:
        delete_item(current_user, item)
    except LabbookError as error:
        db.session.rollback()
        if error.status == 403:
            raise
        flash(error.message, "error")
        return redirect(url_for("billing.new_item"))
    db.session.commit()
    flash(_("Usage item removed."), "success")
    return redirect(url_for("billing.new_item"))


def _policy_form(instrument: Instrument) -> PolicyForm:
    """The form prefilled with the stored policy (or the defaults)."""
    policy = policy_of(instrument)
    current = policy_to_dict(policy)
    form = PolicyForm(formdata=None, data={
        k: v for k, v in current.items() if k != "session_cap"})
    form.cap_from.data, form.cap_to.data = policy.cap_from, policy.cap_to
    form.cap_max_minutes.data = policy.cap_max_minutes
    return form


@bp.route("/billing/instruments/<int:instrument_id>/policy", methods=["GET", "POST"])
def policy(instrument_id: int) -> Any:
    """An instrument's billing policy (managers of its facility and admins; not finance)."""
    instrument = load(Instrument, instrument_id, _("No such instrument."))
    authorize(current_user.manages_facility(instrument.facility_id),
              _("Only managers of this facility edit its billing policy."))
    form = PolicyForm() if request.method == "POST" else _policy_form(instrument)
    status = 200
    if form.is_submitted():
        status = 422
        if form.validate():
            try:
                update_policy(current_user, instrument, form.values())
            except ValidationError as error:
                db.session.rollback()
                form.apply_errors(error.fields)
            else:
                db.session.commit()
                flash(_("Billing policy saved."), "success")
                return redirect(url_for("billing.policy", instrument_id=instrument.id))
    return render_template("billing/policy.html", form=form, instrument=instrument), status
