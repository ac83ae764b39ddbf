"""The facility manager's dashboard (routes attach to ``labbook.care.bp``): today and
tomorrow per instrument, pending approvals, open faults, upcoming maintenance, instruments
down, open sessions and sessions the system closed that need review."""
from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from labbook.auth.guards import authorize
from labbook.bookings.views import load
from labbook.care import bp
from labbook.care.dashboard import MAINTENANCE_DAYS, facility_dashboard
from labbook.db import now_utc
from labbook.instruments.models import Facility

LABELS = {
    "severity": {"cosmetic": _l("cosmetic"), "degraded": _l("degraded"), "down": _l("down")},
    "status": {"open": _l("open"), "investigating": _l("investigating"),
               "waiting_parts": _l("waiting for parts"), "resolved": _l("resolved")},
    "outage": {"preventive": _l("Preventive maintenance"), "repair": _l("Repair"),
               "calibration": _l("Calibration"), "closure": _l("Closure")},
}


@bp.route("/manage/facilities/<int:facility_id>/dashboard")
def dashboard(facility_id: int) -> str:
    """:raises NotFound: unknown facility. :raises Forbidden: unless the user manages it."""
    facility = load(Facility, facility_id, _("No such facility."))
    authorize(current_user.manages_facility(facility), _("Only managers of this facility."))
    now, zone = now_utc(), ZoneInfo(facility.timezone)
    return render_template("care/dashboard.html", facility=facility, now=now,
                           board=facility_dashboard(facility, now), labels=LABELS,
                           maintenance_days=MAINTENANCE_DAYS,
                           month_of=lambda moment: f"{moment.astimezone(zone):%Y-%m}")
