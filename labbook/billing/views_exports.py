"""Period downloads (routes attach to ``labbook.billing.bp``): the lines as CSV or XLSX,
the per-team summary, the journal and all statements as PDF for finance and admins; one
team's statement PDF also for the leads of that team.

An open period is refreshed first (its lines are derived data, recomputed idempotently)
and downloads as its draft. The file is written to a spooled temporary file (memory up to
``SPOOL_BYTES``, then disk) and streamed from there, so a big period does not sit in
memory as one string.
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import IO, Any

from flask import Response, send_file
from flask_babel import gettext as _
from flask_login import current_user

from labbook.auth.guards import authorize
from labbook.billing import bp, exports, journal, pdf
from labbook.billing.models import BillingPeriod
from labbook.billing.periods import find_period, get_period, parse_month
from labbook.billing.statements import refresh_period
from labbook.errors import NotFound
from labbook.extensions import db

SPOOL_BYTES = 8 * 1024 * 1024
FORMATS: dict[str, tuple[str, str, Callable[[BillingPeriod, IO[bytes]], Any]]] = {
    "csv": ("text/csv", "lines.csv", exports.write_lines_csv),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
             "lines.xlsx", exports.write_lines_xlsx),
    "summary": ("text/csv", "summary.csv", exports.write_summary_csv),
    "journal": ("text/csv", "journal.csv", journal.write_journal_csv),
    "pdf": ("application/pdf", "statements.pdf", pdf.write_period_pdf),
}


def prepared_period(month_text: str) -> BillingPeriod:
    """The period to export: a closed one as frozen, an open one refreshed first (and
    committed, so the draft the file shows is the draft the pages show).

    :raises NotFound: for a malformed month.
    """
    month = parse_month(month_text)
    period = find_period(month)
    if period is None or not period.is_closed:
        refresh_period(month)
        db.session.commit()
        period = get_period(month)
    return period


def _download(write: Callable[[IO[bytes]], Any], mimetype: str, name: str) -> Response:
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    write(spool)
    spool.seek(0)
    response = send_file(spool, mimetype=mimetype, as_attachment=True, download_name=name)
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.route("/billing/periods/<month>/export/<fmt_name>")
def export_period(month: str, fmt_name: str) -> Response:
    """A period's export in ``fmt_name`` (csv, xlsx, summary, journal, pdf); finance and
    admins only.

    :raises Forbidden: for anyone else.
    :raises NotFound: for an unknown format or a malformed month.
    """
    authorize(current_user.is_finance, _("Only finance can export billing periods."))
    if fmt_name not in FORMATS:
        raise NotFound(_("Unknown export format: %(fmt)s.", fmt=fmt_name))
    mimetype, suffix, writer = FORMATS[fmt_name]
    period = prepared_period(month)
    name = f"billing-{period.label}-{exports.status_of(period)}-{suffix}"
    return _download(lambda out: writer(period, out), mimetype, name)


@bp.route("/billing/periods/<month>/statements/<int:team_id>.pdf")
def statement_pdf(month: str, team_id: int) -> Response:
    """One team's statement as PDF: finance, admins and the team's leads.

    :raises Forbidden: for anyone else.
    :raises NotFound: for a malformed month, or when the team has no statement in it.
    """
    authorize(current_user.is_finance or current_user.leads_team(team_id),
              _("Only finance and the team's leads can download its statement."))
    period = prepared_period(month)
    name = f"statement-{period.label}-team{team_id}.pdf"
    # The statement is written before anything is sent: NotFound still gets its 404 page.
    return _download(lambda out: pdf.write_statement_pdf(period, team_id, out),
                     "application/pdf", name)
