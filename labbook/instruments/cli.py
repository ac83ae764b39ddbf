"""``flask instruments import FILE.csv``: load or update many instruments from a spreadsheet.

All or nothing. Every row goes through the same service as the UI and the API
(``create_instrument``/``update_instrument``), each inside its own SAVEPOINT so that one bad
row cannot hide the problems of the next; if any row is refused, everything is rolled back
and every problem is reported with its line number. The columns are documented in
``docs/cli.md``.
"""
from __future__ import annotations

import csv
import io
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa
from flask.cli import AppGroup
from flask_babel import gettext as _

from labbook import audit
from labbook.cli import fail, progressbar
from labbook.errors import ValidationError
from labbook.extensions import db
from labbook.instruments.models import POLICY_FIELDS, Facility, Instrument, ResearchField
from labbook.instruments.services import (
    AUDITED,
    BOOL_FIELDS,
    NULLABLE_INTS,
    create_instrument,
    update_instrument,
)

instruments_cli = AppGroup("instruments", help="Manage the instrument catalog.")

REQUIRED_COLUMNS = ("asset_code", "name", "facility", "category")
OPTIONAL_COLUMNS = ("make", "model", "location", "description", "fields", "status") + POLICY_FIELDS
COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
# Service field names -> the CSV column the user wrote them in.
SERVICE_COLUMNS = {"facility_id": "facility", "field_ids": "fields"}
TRUE_WORDS = {"true", "yes", "1"}
FALSE_WORDS = {"false", "no", "0"}
NONE_WORDS = {"none"}


class ImportFileError(Exception):
    """A problem with the file as a whole (encoding, header, no rows)."""


@dataclass
class Row:
    line: int  # physical line in the file where the row starts; the header is line 1
    cells: dict[str, str]
    extra: list[str] = field(default_factory=list)  # cells beyond the header's columns


@dataclass
class Outcome:
    counts: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    bad_lines: set[int] = field(default_factory=set)

    reported: set[tuple[int, str]] = field(default_factory=set)

    def refuse(self, line: int, column: str, message: str) -> None:
        self.errors.append((line, f"line {line}: {column}: {message}"))
        self.bad_lines.add(line)
        self.reported.add((line, column))

    def error_lines(self) -> list[str]:
        """Every problem, in file order (a stable sort keeps each row's own order)."""
        return [text for _line, text in sorted(self.errors, key=lambda item: item[0])]


def _decode(data: bytes) -> str:
    """:raises ImportFileError: unless ``data`` is UTF-8 text (a BOM is allowed)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ImportFileError(_("The file is not UTF-8 text (first bad byte on line %(line)d). "
                                "Save it as \"CSV UTF-8\".", line=line)) from error


def _check_header(header: list[str]) -> list[str]:
    """Normalised column names. :raises ImportFileError: on missing, unknown, empty or
    repeated columns, naming all of them at once."""
    names = [cell.strip().lower() for cell in header]
    problems = []
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        problems.append(_("missing required columns: %(cols)s", cols=", ".join(missing)))
    unknown = [n or _("(column %(n)d has no name)", n=i + 1) for i, n in enumerate(names)
               if n not in COLUMNS]
    if unknown:
        problems.append(_("unknown columns: %(cols)s", cols=", ".join(unknown)))
    repeated = sorted({n for n in names if n and names.count(n) > 1})
    if repeated:
        problems.append(_("repeated columns: %(cols)s", cols=", ".join(repeated)))
    if problems:
        raise ImportFileError(_("Bad header on line 1: %(problems)s. Known columns: %(cols)s.",
                                problems="; ".join(problems), cols=", ".join(COLUMNS)))
    return names


def read_rows(data: bytes) -> list[Row]:
    """Parse CSV bytes into rows keyed by column name, skipping blank lines.

    :raises ImportFileError: on an encoding or header problem, or when there are no rows.
    """
    reader = csv.reader(io.StringIO(_decode(data), newline=""))
    try:
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            raise ImportFileError(_("The file is empty: expected a header line with at least "
                                    "the columns %(cols)s.", cols=", ".join(REQUIRED_COLUMNS)))
        names = _check_header(header)
        rows, line = [], reader.line_num
        for cells in reader:
            start, line = line + 1, reader.line_num
            if any(cell.strip() for cell in cells):
                padded = cells + [""] * (len(names) - len(cells))
                rows.append(Row(start, dict(zip(names, padded)), cells[len(names):]))
    except csv.Error as error:
        raise ImportFileError(_("Line %(line)d is not valid CSV: %(error)s",
                                line=reader.line_num, error=str(error))) from error
    if not rows:
        raise ImportFileError(_("The file has a header but no instruments."))
    return rows


class Lookups:
    """Facility and research field codes -> ids, loaded once per import."""

    def __init__(self) -> None:
        self.facilities = dict(db.session.execute(sa.select(Facility.code, Facility.id)).all())
        self.fields = dict(
            db.session.execute(sa.select(ResearchField.code, ResearchField.id)).all()
        )


def _parse_int(column: str, text: str) -> int | None:
    """:raises ValueError: with the message for the user."""
    if column in NULLABLE_INTS and text.lower() in NONE_WORDS:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(_("Must be a whole number.")) from None


def _parse_bool(text: str) -> bool:
    """:raises ValueError: with the message for the user."""
    word = text.lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise ValueError(_("Must be true or false (also yes/no, 1/0)."))


def _parse_reference(column: str, text: str, lookups: Lookups) -> Any:
    """The facility id, or the list of research field ids (codes separated by ``;``).

    :raises ValueError: naming the unknown codes.
    """
    if column == "facility":
        if text not in lookups.facilities:
            raise ValueError(_("Unknown facility code: %(code)s", code=text))
        return lookups.facilities[text]
    codes = [code.strip() for code in text.split(";") if code.strip()]
    unknown = [code for code in codes if code not in lookups.fields]
    if unknown:
        raise ValueError(_("Unknown research field code: %(codes)s", codes=", ".join(unknown)))
    return [lookups.fields[code] for code in codes]


def _parse_cell(column: str, text: str, lookups: Lookups) -> tuple[str, Any]:
    """One cell as (service field name, typed value). :raises ValueError: on a bad value."""
    if column in ("facility", "fields"):
        key = "facility_id" if column == "facility" else "field_ids"
        return key, _parse_reference(column, text, lookups)
    if column in BOOL_FIELDS:
        return column, _parse_bool(text)
    if column in POLICY_FIELDS:
        return column, _parse_int(column, text)
    return column, text


def parse_row(row: Row, lookups: Lookups, outcome: Outcome) -> dict[str, Any]:
    """The typed values of one row. Empty optional cells are left out: a new instrument gets
    the default, an existing one keeps its value. Bad cells are recorded in ``outcome``."""
    values: dict[str, Any] = {}
    if any(cell.strip() for cell in row.extra):
        outcome.refuse(row.line, _("(row)"), _("More cells than the header has columns."))
    for column, raw in row.cells.items():
        text = raw.strip()
        if not text and column not in REQUIRED_COLUMNS:
            continue
        if not text and column == "facility":
            outcome.refuse(row.line, column, _("This field is required."))
            continue
        try:
            key, value = _parse_cell(column, text, lookups)
        except ValueError as error:
            outcome.refuse(row.line, column, str(error))
        else:
            values[key] = value
    return values


def _save(values: dict[str, Any]) -> str:
    """Create or update one instrument; returns ``created``, ``updated`` or ``unchanged``.

    :raises ValidationError: from the service.
    """
    code = values["asset_code"].strip()
    existing = db.session.scalar(sa.select(Instrument).where(Instrument.asset_code == code))
    if existing is None:
        create_instrument(None, values)
        return "created"
    before = audit.snapshot(existing, AUDITED)
    update_instrument(None, existing, values)  # type: ignore[arg-type]  # None: the system
    return "updated" if audit.snapshot(existing, AUDITED) != before else "unchanged"


def _record_refusal(row: Row, error: ValidationError, outcome: Outcome) -> None:
    """The service's field messages, minus columns the parser already reported."""
    for name, messages in error.fields.items():
        column = SERVICE_COLUMNS.get(name, name)
        if (row.line, column) in outcome.reported:
            continue
        for message in messages:
            outcome.refuse(row.line, column, message)


def _apply_row(row: Row, values: dict[str, Any], outcome: Outcome) -> None:
    """Run one row through the service inside a SAVEPOINT. A row the parser already
    refused still runs (so all its problems are listed) but is always rolled back."""
    savepoint = db.session.begin_nested()
    try:
        result = _save(values)
    except ValidationError as error:
        savepoint.rollback()
        _record_refusal(row, error, outcome)
    except sa.exc.IntegrityError as error:
        savepoint.rollback()
        outcome.refuse(row.line, _("(row)"), _("Refused by the database: %(error)s",
                                               error=str(error.orig).splitlines()[0]))
    else:
        if row.line in outcome.bad_lines:
            savepoint.rollback()
            return
        savepoint.commit()
        outcome.counts[result] += 1
        if result != "created":
            code = values["asset_code"].strip()
            outcome.notes.append(f"line {row.line}: {result} existing instrument {code}")


def _check_duplicates(rows: list[Row], outcome: Outcome) -> None:
    first_seen: dict[str, int] = {}
    for row in rows:
        code = row.cells.get("asset_code", "").strip()
        if code in first_seen:
            outcome.refuse(row.line, "asset_code", _("Also on line %(line)d: each instrument may "
                                                     "appear only once.", line=first_seen[code]))
        elif code:
            first_seen[code] = row.line


def import_rows(rows: list[Row], progress: Any = None) -> Outcome:
    """Validate and apply every row, collecting every problem. The caller commits when
    ``outcome.errors`` is empty and rolls back otherwise."""
    outcome = Outcome()
    lookups = Lookups()
    _check_duplicates(rows, outcome)
    wrap = progress or (lambda items, label: nullcontext(items))
    with wrap(rows, _("Checking and importing")) as items:
        for row in items:
            _apply_row(row, parse_row(row, lookups, outcome), outcome)
    return outcome


@instruments_cli.command("import")
@click.argument("path", metavar="FILE.csv",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_command(path: Path) -> None:
    """Create or update instruments from a UTF-8 CSV file (columns: see docs/cli.md).
    Rows whose asset_code exists update that instrument. Nothing is written unless every
    row is valid."""
    try:
        rows = read_rows(path.read_bytes())
    except ImportFileError as error:
        fail(str(error))
    outcome = import_rows(rows, progress=progressbar)
    if outcome.errors:
        bad = len(outcome.bad_lines)
        fail(f"{bad} of {len(rows)} rows have errors; nothing was imported.", outcome.error_lines())
    db.session.commit()
    for note in outcome.notes:
        click.echo(note)
    counts = outcome.counts
    click.echo(f"Imported {len(rows)} rows from {path.name}: created {counts['created']}, "
               f"updated {counts['updated']}, unchanged {counts['unchanged']}.")
