"""Closure import pages (routes attach to ``labbook.feeds.bp``): a facility's managers
upload an ``.ics`` file or give its address, see a preview (a dry run: the events found and,
per instrument, the bookings that would be cancelled), confirm, and get a summary.

The preview carries the calendar it showed in a hidden field (compressed), so the confirm
step imports exactly what was previewed, without fetching the URL again; the import itself
is all or nothing (labbook/feeds/imports.py).
"""
from __future__ import annotations

import base64
import binascii
import zlib
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.file import FileField
from wtforms import HiddenField, StringField
from wtforms.validators import Length, Optional

from labbook.auth.guards import authorize, get_or_404
from labbook.bookings.pages import time_span
from labbook.db import now_utc
from labbook.errors import ValidationError
from labbook.extensions import db
from labbook.feeds import bp, import_fetch, import_parse, imports
from labbook.forms import BaseForm
from labbook.instruments.models import Facility

# Room left in the form for the CSRF token and the other fields.
FORM_SLACK = 4096


class ClosureImportForm(BaseForm):
    file = FileField(_l("Calendar file (.ics)"))
    url = StringField(
        _l("…or the calendar's address"), validators=[Optional(), Length(max=2000)],
        description=_l("An http://, https:// or webcal:// address, e.g. a public holiday "
                       "calendar."),
    )


class ClosureConfirmForm(BaseForm):
    payload = HiddenField()
    source = HiddenField(validators=[Optional(), Length(max=2000)])


def pack(data: bytes) -> str:
    return base64.b64encode(zlib.compress(data, 9)).decode("ascii")


def unpack(payload: str) -> bytes:
    """The calendar a preview carried, never more than the import limit once inflated.

    :raises ValidationError: when the hidden field was damaged.
    """
    limit = current_app.config["LABBOOK_IMPORT_MAX_BYTES"]
    try:
        inflater = zlib.decompressobj()
        data = inflater.decompress(base64.b64decode(payload or "", validate=True), limit + 1)
    except (binascii.Error, zlib.error, ValueError):
        data = b""
    if not data:
        raise import_parse.refuse(_("The preview could not be read back. Please start again."))
    return data


def _upload(form: ClosureImportForm) -> tuple[bytes, str]:
    """The calendar and where it came from: the uploaded file or the fetched address.

    :raises ValidationError: neither or both given, or the address cannot be fetched.
    """
    upload = form.file.data
    has_file = upload is not None and bool(getattr(upload, "filename", ""))
    if has_file == bool(form.url.data):
        message = _("Choose a file or give an address (one of the two).")
        raise ValidationError(message, {"file": [message]})
    if not has_file:
        return import_fetch.fetch_url(form.url.data), form.url.data
    limit = current_app.config["LABBOOK_IMPORT_MAX_BYTES"]
    data = upload.stream.read(limit + 1)
    if not data:
        raise ValidationError(_("The file is empty."), {"file": [_("The file is empty.")]})
    return data, upload.filename


def when(event: import_parse.ClosureEvent, tz: str) -> str:
    """An event's dates (all-day: first and last day) or times on the facility's clock."""
    zone = ZoneInfo(tz)
    if not event.all_day:
        return time_span(event.start, event.end, tz)
    first = event.start.astimezone(zone).date()
    last = (event.end.astimezone(zone) - timedelta(seconds=1)).date()
    span = first.isoformat() if first == last else f"{first.isoformat()} – {last.isoformat()}"
    return _("%(dates)s (all day)", dates=span)


def _render(name: str, facility: Facility, status: int = 200, **context: Any) -> tuple[str, int]:
    return render_template(f"feeds/closures_{name}.html", facility=facility, when=when,
                           **context), status


def _fail(facility: Facility, form: ClosureImportForm, error: ValidationError) -> Any:
    db.session.rollback()
    form.apply_errors({k: v for k, v in error.fields.items() if k in ("file", "url")})
    return _render("import", facility, error.status, form=form, error=error)


def _preview(facility: Facility, form: ClosureImportForm, now: datetime) -> Any:
    try:
        data, source = _upload(form)
        result = imports.import_closures(current_user, facility, data, source=source, now=now,
                                         dry_run=True)
    except ValidationError as error:
        return _fail(facility, form, error)
    db.session.rollback()
    payload = pack(data)
    too_big = len(payload) + FORM_SLACK > current_app.config["MAX_FORM_MEMORY_SIZE"]
    confirm = ClosureConfirmForm(formdata=None, payload=payload, source=source)
    return _render("preview", facility, result=result, confirm_form=confirm, too_big=too_big)


def _confirm(facility: Facility, now: datetime) -> Any:
    form = ClosureConfirmForm()
    try:
        if not form.validate_on_submit():
            raise import_parse.refuse(_("The preview could not be read back. Please start again."))
        result = imports.import_closures(current_user, facility, unpack(form.payload.data),
                                         source=form.source.data or None, now=now)
    except ValidationError as error:
        return _fail(facility, ClosureImportForm(formdata=None), error)
    db.session.commit()
    return _render("summary", facility, result=result)


@bp.route("/facilities/<int:facility_id>/closures/import", methods=["GET", "POST"])
def closures_import(facility_id: int) -> Any:
    """Import closures from iCalendar: form (GET), preview (POST), confirm (POST with the
    preview's payload), summary.

    :raises NotFound: unknown facility. :raises Forbidden: unless the user manages it.
    """
    facility = get_or_404(Facility, facility_id, _("No such facility."))
    authorize(current_user.manages_facility(facility.id),
              _("Only managers of this facility may import its closures."))
    if request.method == "POST" and "payload" in request.form:
        return _confirm(facility, now_utc())
    form = ClosureImportForm()
    if form.validate_on_submit():
        return _preview(facility, form, now_utc())
    return _render("import", facility, 422 if form.errors else 200, form=form, error=None)
