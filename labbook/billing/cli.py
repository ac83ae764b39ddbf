"""Billing commands: ``flask --app labbook billing refresh|close|export`` and
``flask --app labbook usage import``.

Like every command each owns its transaction: all or nothing, one commit at the end; a
refusal rolls back, prints the reason on stderr and exits with status 1. The commands act
as the system (no user), so the audit log records them without an actor.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import IO, Any

import click
import sqlalchemy as sa
from flask.cli import AppGroup

from labbook.billing import closing, exports, imports, journal, pdf
from labbook.billing.models import ChargeLine
from labbook.billing.money import fmt
from labbook.billing.periods import find_period, get_period, parse_month
from labbook.billing.statements import refresh_period, statements_for
from labbook.cli import fail, fail_with
from labbook.errors import LabbookError, NotFound
from labbook.extensions import db

billing_cli = AppGroup("billing", help="Billing periods: refresh, close, export.")
usage_cli = AppGroup("usage", help="Usage history: import from another system.")
FORMATS = ("csv", "xlsx", "pdf", "journal", "summary")


def month_arg(raw: str) -> date:
    """:raises click.ClickException: for anything but YYYY-MM."""
    try:
        return parse_month(raw)
    except NotFound as error:
        fail(error.message)


@billing_cli.command("refresh")
@click.argument("month", metavar="YYYY-MM")
def refresh_command(month: str) -> None:
    """Recompute the open period's draft charge lines from their sources."""
    try:
        result = refresh_period(month_arg(month))
    except LabbookError as error:
        fail_with(error)
    db.session.commit()
    click.echo(f"{month}: {result.inserted} lines added, {result.updated} changed, "
               f"{result.deleted} removed.")


def echo_statements(period: Any) -> None:
    views = statements_for(period)
    for view in views:
        click.echo(f"{view.number or 'draft'}  {view.team_name}  {view.customer_class}  "
                   f"subtotal {fmt(view.subtotal)}  tax {fmt(view.tax)}  "
                   f"total {fmt(view.total)} {view.currency}")
    totals = closing.period_totals(period)
    click.echo(f"{len(views)} statements, total {fmt(totals['total'])}")


def checklist_lines(error: LabbookError) -> list[str]:
    """The pre-close checklist of a refused close, one problem a line."""
    found = error.extra.get("checklist") or {}
    return [f"  {name}: {item}" for name, items in found.items() for item in items]


@billing_cli.command("close")
@click.argument("month", metavar="YYYY-MM")
@click.option("--force", is_flag=True, help="Close despite checklist warnings.")
def close_command(month: str, force: bool) -> None:
    """Close a period: refresh, check, number the statements, freeze."""
    try:
        period = closing.close_period(None, month_arg(month), force=force)
    except LabbookError as error:
        fail(error.message, checklist_lines(error))
    db.session.commit()
    click.echo(f"Closed {period.label}.")
    echo_statements(period)


def _writer(fmt_name: str, period: Any) -> Callable[[IO[bytes], Any], Any]:
    """The writer of ``fmt_name``: ``writer(out, progress)``."""
    return {
        "csv": lambda out, progress: exports.write_lines_csv(period, out, progress),
        "xlsx": lambda out, progress: exports.write_lines_xlsx(period, out, progress),
        "summary": lambda out, progress: exports.write_summary_csv(period, out),
        "journal": lambda out, progress: journal.write_journal_csv(period, out),
        "pdf": lambda out, progress: pdf.write_period_pdf(period, out),
    }[fmt_name]


@billing_cli.command("export")
@click.argument("month", metavar="YYYY-MM")
@click.option("--format", "fmt_name", type=click.Choice(FORMATS), default="csv",
              show_default=True)
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True,
              help="The file to write.")
def export_command(month: str, fmt_name: str, out_path: str) -> None:
    """Export a period: lines (csv, xlsx), statements (pdf), journal or summary. An open
    period is refreshed first and exported as its draft."""
    parsed = month_arg(month)
    existing = find_period(parsed)
    try:
        if existing is None or not existing.is_closed:
            refresh_period(parsed)
        period = get_period(parsed)
        total = db.session.scalar(sa.select(sa.func.count()).select_from(ChargeLine).where(
            ChargeLine.period_id == period.id)) or 0
        with Path(out_path).open("wb") as out, \
                click.progressbar(length=total, label=f"Exporting {month}",
                                  file=sys.stderr) as bar:
            count = _writer(fmt_name, period)(out, bar.update)
    except LabbookError as error:
        fail_with(error)
    except (OSError, ValueError) as error:
        fail(str(error))
    db.session.commit()
    click.echo(f"Wrote {out_path} ({fmt_name}, {count} rows, {exports.status_of(period)}).")


@usage_cli.command("import")
@click.argument("path", metavar="FILE.csv", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check every row; write nothing.")
def import_command(path: str, dry_run: bool) -> None:
    """Import usage history (sessions and consumables) from a CSV file, all or nothing."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        fail(f"Cannot read {path}: {error.strerror}")
    try:
        result = imports.import_usage(None, data, source=Path(path).name, dry_run=dry_run)
    except LabbookError as error:
        fail_with(error)
    if dry_run:
        db.session.rollback()
    else:
        db.session.commit()
    verb = "Would import" if dry_run else "Imported"
    click.echo(f"{verb} {result.bookings} sessions and {result.items} usage items.")
