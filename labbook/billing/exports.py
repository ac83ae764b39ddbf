"""Period exports for finance (SPEC section 6): every charge line as CSV or XLSX, and a
per-team summary CSV.

Why streaming: a busy centre's month can hold a million lines, so the lines are read
with a ``yield_per`` query (a server-side cursor on PostgreSQL) and written as they come;
nothing builds a list of them. Why deterministic: a closed period must re-export
byte-identical (finance compares files and archives them), so rows are ordered by id,
nothing depends on "now", and the XLSX zip is rewritten with fixed timestamps.

An open period exports its draft as it stands (the caller refreshes first); its rows say
``draft`` in the ``status`` column, a closed period's say ``closed``.
"""
from __future__ import annotations

import csv
import io
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from decimal import Decimal
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from labbook.auth.models import User
from labbook.billing.models import BillingPeriod, ChargeLine, Consumable, Rate, Statement
from labbook.billing.money import currency, fmt
from labbook.billing.periods import centre_zone
from labbook.billing.statements import statements_for
from labbook.extensions import db
from labbook.instruments.models import Instrument
from labbook.teams.models import Account, Team

LINE_COLUMNS = (
    "status", "period", "statement_number", "team", "customer_class", "account", "line_id",
    "kind", "charge_type", "occurred_at", "description", "instrument", "consumable",
    "user_email", "quantity", "unit_amount", "amount", "currency", "rate_id",
    "rate_effective_from", "billed_minutes", "fee_factor", "missing_rate",
)
SUMMARY_COLUMNS = (
    "status", "period", "statement_number", "team", "customer_class", "tax_rate", "subtotal",
    "tax", "total", "currency",
)
# Rows fetched per round trip, and how often ``progress`` hears about it.
BATCH = 1000
# A fixed moment for files of open periods (they have no close time).
EPOCH = datetime(2020, 1, 1, tzinfo=timezone.utc)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Progress = Callable[[int], None] | None


def text_cell(value: str | None) -> str:
    """Text as a spreadsheet should show it: a leading ``=`` (or ``+ - @``) would run as a
    formula, so such text gets an apostrophe in front."""
    text = value or ""
    return "'" + text if text[:1] in FORMULA_STARTS else text


def status_of(period: BillingPeriod) -> str:
    return "closed" if period.closed_at is not None else "draft"


def stamp_of(period: BillingPeriod) -> datetime:
    """The moment written into file metadata: the close, or a fixed epoch for a draft."""
    return period.closed_at or EPOCH


def _line_query(period: BillingPeriod) -> sa.Select:
    instrument, consumable = aliased(Instrument), aliased(Consumable)
    return (
        sa.select(
            ChargeLine.id, ChargeLine.kind, ChargeLine.charge_type, ChargeLine.occurred_at,
            ChargeLine.description, ChargeLine.quantity, ChargeLine.unit_amount,
            ChargeLine.amount, ChargeLine.rate_id, ChargeLine.missing_rate,
            ChargeLine.explanation, Statement.number,
            sa.func.coalesce(Statement.team_name, Team.name).label("team_name"),
            sa.func.coalesce(Statement.customer_class_code,
                             Team.customer_class_code).label("class_code"),
            Account.code.label("account_code"), instrument.asset_code,
            consumable.code.label("consumable_code"), User.email,
            Rate.effective_from,
        )
        .join(Team, Team.id == ChargeLine.team_id)
        .join(Account, Account.id == ChargeLine.account_id)
        .outerjoin(Statement, Statement.id == ChargeLine.statement_id)
        .outerjoin(instrument, instrument.id == ChargeLine.instrument_id)
        .outerjoin(consumable, consumable.id == ChargeLine.consumable_id)
        .outerjoin(User, User.id == ChargeLine.user_id)
        .outerjoin(Rate, Rate.id == ChargeLine.rate_id)
        .where(ChargeLine.period_id == period.id)
        .order_by(ChargeLine.id)
        .execution_options(yield_per=BATCH)
    )


def _number(number: int | None) -> str:
    return f"LB-{number:06d}" if number is not None else ""


def _decimal(value: Decimal | None) -> str:
    """A quantity or unit price without float noise and without trailing zeros."""
    if value is None:
        return ""
    return format(value.normalize(), "f")


def line_rows(period: BillingPeriod, progress: Progress = None) -> Iterator[list[Any]]:
    """The period's lines as export rows (``LINE_COLUMNS``), streamed in id order."""
    zone, code, status = centre_zone(), currency(), status_of(period)
    count = 0
    for row in db.session.execute(_line_query(period)):
        facts = row.explanation or {}
        yield [
            status, period.label, _number(row.number), row.team_name, row.class_code,
            row.account_code, row.id, row.kind, row.charge_type or "",
            row.occurred_at.astimezone(zone).isoformat(), row.description,
            row.asset_code or "", row.consumable_code or "", row.email or "",
            _decimal(row.quantity), _decimal(row.unit_amount), fmt(row.amount, code), code,
            row.rate_id or "", row.effective_from.isoformat() if row.effective_from else "",
            facts.get("billed_minutes", ""), facts.get("fee_factor", ""),
            "1" if row.missing_rate else "0",
        ]
        count += 1
        if progress is not None and count % BATCH == 0:
            progress(BATCH)
    if progress is not None and count % BATCH:
        progress(count % BATCH)


TEXT_COLUMNS = {LINE_COLUMNS.index(name) for name in (
    "team", "account", "description", "user_email")}
NUMERIC_COLUMNS = {LINE_COLUMNS.index(name) for name in ("quantity", "unit_amount", "amount")}


class CsvSink:
    """Rows as UTF-8 CSV bytes (with a BOM, so spreadsheets read Chinese), written to
    ``out`` in chunks so memory stays flat."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.buffer = io.StringIO()
        self.writer = csv.writer(self.buffer, lineterminator="\r\n")
        self.pending = 0
        out.write("\ufeff".encode())

    def write(self, row: list[Any]) -> None:
        self.writer.writerow(row)
        self.pending += 1
        if self.pending >= BATCH:
            self.flush()

    def flush(self) -> None:
        self.out.write(self.buffer.getvalue().encode("utf-8"))
        self.buffer.seek(0)
        self.buffer.truncate()
        self.pending = 0


def _safe(row: list[Any]) -> list[Any]:
    return [text_cell(v) if i in TEXT_COLUMNS else v for i, v in enumerate(row)]


def write_lines_csv(period: BillingPeriod, out: IO[bytes], progress: Progress = None) -> int:
    """Write one CSV row per charge line of ``period``; returns the number of lines."""
    sink = CsvSink(out)
    sink.write(list(LINE_COLUMNS))
    count = 0
    for row in line_rows(period, progress):
        sink.write(_safe(row))
        count += 1
    sink.flush()
    return count


def summary_rows(period: BillingPeriod) -> Iterator[list[Any]]:
    """One row per team's statement and a final totals row (``SUMMARY_COLUMNS``)."""
    code, status = currency(), status_of(period)
    totals = {"subtotal": Decimal(0), "tax": Decimal(0), "total": Decimal(0)}
    for view in statements_for(period):
        totals = {"subtotal": totals["subtotal"] + view.subtotal,
                  "tax": totals["tax"] + view.tax, "total": totals["total"] + view.total}
        yield [status, period.label, view.number or "", text_cell(view.team_name),
               view.customer_class, str(view.tax_rate), fmt(view.subtotal, code),
               fmt(view.tax, code), fmt(view.total, code), view.currency]
    yield [status, period.label, "", "TOTAL", "", "", fmt(totals["subtotal"], code),
           fmt(totals["tax"], code), fmt(totals["total"], code), code]


def write_summary_csv(period: BillingPeriod, out: IO[bytes]) -> int:
    """Write the per-team summary; returns the number of statements."""
    sink = CsvSink(out)
    sink.write(list(SUMMARY_COLUMNS))
    count = -1  # the totals row is not a statement
    for row in summary_rows(period):
        sink.write(row)
        count += 1
    sink.flush()
    return count


def _xlsx_value(index: int, value: Any) -> Any:
    """Amounts as numbers (finance sums them); everything else as text."""
    if index in NUMERIC_COLUMNS and value not in ("", None):
        return float(value)
    if index in TEXT_COLUMNS:
        return text_cell(value)
    return value


def write_lines_xlsx(period: BillingPeriod, out: IO[bytes], progress: Progress = None) -> int:
    """Write the lines as one XLSX sheet (openpyxl write-only: rows go to a temporary file,
    not memory); the result is byte-identical for the same period.

    :raises OSError: when ``out`` cannot be written.
    """
    from openpyxl import Workbook
    from openpyxl.writer.excel import ExcelWriter

    workbook = Workbook(write_only=True)
    stamp = stamp_of(period).astimezone(timezone.utc).replace(tzinfo=None, microsecond=0)
    workbook.properties.created = stamp
    workbook.properties.modified = stamp
    workbook.properties.creator = "labbook"
    sheet = workbook.create_sheet(title=period.label)
    sheet.append(list(LINE_COLUMNS))
    count = 0
    for row in line_rows(period, progress):
        sheet.append([_xlsx_value(i, v) for i, v in enumerate(row)])
        count += 1
    with tempfile.TemporaryFile() as raw:  # on disk: a million lines are ~100 MB zipped
        # Not ``workbook.save``: it would stamp "now" as the modified time.
        ExcelWriter(workbook, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED)).save()
        raw.seek(0)
        normalize_zip(raw, out, stamp)
    return count


def normalize_zip(data: IO[bytes], out: IO[bytes], stamp: datetime) -> None:
    """Rewrite a zip with every member dated ``stamp`` and in name order, so two exports
    of the same content are the same bytes (openpyxl stamps members with "now"). Members
    are copied in chunks: memory stays flat however large the sheet."""
    date_time = (max(stamp.year, 1980), stamp.month, stamp.day, stamp.hour, stamp.minute,
                 stamp.second)
    with zipfile.ZipFile(data) as source, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        names = source.namelist()
        first = [n for n in ("[Content_Types].xml",) if n in names]
        for name in first + sorted(n for n in names if n not in first):
            info = zipfile.ZipInfo(name, date_time=date_time)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            with source.open(name) as member, target.open(info, "w") as copy:
                shutil.copyfileobj(member, copy, 1 << 20)
