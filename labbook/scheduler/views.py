"""The scheduler's status page for administrators: who leads, and per job the interval,
the last run and its outcome, and the next run as APScheduler has it in its store."""
from __future__ import annotations

from flask import current_app, render_template
from flask_babel import lazy_gettext as _l

from labbook.auth.guards import require_role
from labbook.auth.models import Role
from labbook.db import now_utc
from labbook.scheduler import bp, services
from labbook.scheduler.registry import JOBS, IntervalError, job_table

JOB_LABELS = {
    "booking_reminders": _l("Booking reminders"),
    "no_shows": _l("No-shows"),
    "auto_check_out": _l("Automatic check-out"),
    "expire_pending": _l("Expire unapproved bookings"),
    "approval_reminders": _l("Reminders to approvers"),
    "waitlists": _l("Waitlist offers"),
    "qualification_expiry": _l("Qualification expiry"),
    "deliver_outbox": _l("Mail delivery"),
    "maintenance": _l("Preventive maintenance windows"),
    "instrument_status": _l("Instrument status"),
    "monthly_statements": _l("Draft statements"),
}
STATE_LABELS = {
    "never": (_l("Never run"), "status-retired"),
    "running": (_l("Running"), "status-limited"),
    "ok": (_l("OK"), "status-available"),
    "failed": (_l("Failed"), "status-down"),
    "unavailable": (_l("Not available"), "status-down"),
}


@bp.route("/admin/scheduler")
@require_role(Role.ADMIN)
def status():
    config = current_app.config
    try:
        jobs, config_error = job_table(config), None
    except IntervalError as error:
        jobs, config_error = JOBS, str(error)
    period = config["LABBOOK_SCHEDULER_ELECTION_SECONDS"]
    return render_template(
        "scheduler/status.html",
        leader=services.leader_view(now_utc(), period),
        jobs=services.job_views(jobs),
        config_error=config_error,
        job_labels=JOB_LABELS,
        state_labels=STATE_LABELS,
    )
