"""``flask --app labbook closures import FACILITY_CODE FILE_OR_URL [--dry-run]``: import
facility closures (public holidays, shutdowns) from an iCalendar file or address.

Like every command it owns its transaction: all or nothing, commit once at the end; a
refusal rolls back, prints the reason on stderr and exits with status 1. ``--dry-run``
prints what would happen and writes nothing. The command acts as the system (no user), so
the audit log records the changes without an actor.
"""
from __future__ import annotations

from pathlib import Path

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import AppGroup

from labbook.bookings.pages import time_span
from labbook.cli import fail
from labbook.db import now_utc
from labbook.errors import LabbookError
from labbook.extensions import db
from labbook.feeds import import_fetch, imports
from labbook.instruments.models import Facility

closures_cli = AppGroup("closures", help="Facility closures (holidays) from iCalendar files.")
URL_PREFIXES = ("http://", "https://", "webcal://")


def read_source(source: str) -> bytes:
    """The calendar from a URL or a file.

    :raises LabbookError: from ``fetch_url`` (bad scheme, unreachable, not a calendar).
    :raises click.ClickException: for a file that cannot be read or is too big.
    """
    if source.lower().startswith(URL_PREFIXES) or "://" in source:
        return import_fetch.fetch_url(source)
    path = Path(source)
    if not path.is_file():
        fail(f"No such file: {source}")
    limit = current_app.config["LABBOOK_IMPORT_MAX_BYTES"]
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        fail(f"The calendar is too big (more than {limit // 1024} KB).")
    return data


def echo_result(result: imports.ImportResult, zone: str) -> None:
    counts = result.counts
    verb = "Would import" if result.dry_run else "Imported"
    click.echo(f"{verb} {len(result.events)} events ({result.past} past events skipped): "
               f"created {counts['created']}, updated {counts['updated']}, "
               f"cancelled {counts['cancelled']}, unchanged {counts['unchanged']}, "
               f"skipped {counts['skipped']} closures.")
    for note in result.notes:
        click.echo(note)
    if not result.affected:
        return
    label = "Bookings that would be cancelled" if result.dry_run else "Bookings cancelled"
    click.echo(f"{label}: {len(result.affected)}")
    for row in result.affected:
        click.echo(f"  #{row.booking_id} {row.instrument}: {time_span(row.start, row.end, zone)} "
                   f"{row.user} — {row.event}")


@closures_cli.command("import")
@click.argument("facility_code")
@click.argument("source", metavar="FILE_OR_URL")
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
def import_command(facility_code: str, source: str, dry_run: bool) -> None:
    """Import the events of an iCalendar file or http(s)/webcal address as closures on every
    instrument of the facility FACILITY_CODE. Importing again updates by event UID."""
    facility = db.session.scalar(sa.select(Facility).where(Facility.code == facility_code))
    if facility is None:
        fail(f"Unknown facility code: {facility_code}")
    try:
        data = read_source(source)
        result = imports.import_closures(None, facility, data, source=source, now=now_utc(),
                                         dry_run=dry_run)
    except LabbookError as error:
        fail(error.message)
    if dry_run:
        db.session.rollback()
    else:
        db.session.commit()
    echo_result(result, facility.timezone)
