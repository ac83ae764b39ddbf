"""Export memory: the per-line CSV and XLSX exports of a month must stream (SPEC section
6; the issue: 1M lines with flat peak memory).

On each backend (see bench_catalog.on_each_backend) a period gets ``LABBOOK_BENCH_EXPORT_LINES``
charge lines (default 1,000,000) written straight into ``charge_lines``; the CSV export
and the XLSX export run once when a tenth of them exist and once with all of them. For
each: lines written, seconds, and the peak of Python's allocations
of the process's resident memory (each export runs in a forked process; the file goes to
a temp file on disk). Flat memory means the peak with all lines is about the peak with a
tenth. Nothing here is asserted.
"""
from __future__ import annotations

import multiprocessing
import os
import resource
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from flask_migrate import upgrade

from bench.bench_catalog import make_app, on_each_backend
from labbook.billing.exports import write_lines_csv, write_lines_xlsx
from labbook.billing.models import BillingPeriod, ChargeLine
from labbook.billing.periods import get_period
from labbook.extensions import db
from tests import factories

LINES = int(os.environ.get("LABBOOK_BENCH_EXPORT_LINES", "1000000"))
MONTH = date(2025, 3, 1)
CHUNK = 20_000
EXPORTS = {"csv": write_lines_csv, "xlsx": write_lines_xlsx}


def add_lines(period_id: int, team_id: int, account_id: int, first: int, count: int) -> None:
    """``count`` plain time lines, inserted in chunks with executemany."""
    start = datetime(2025, 3, 1, tzinfo=timezone.utc)
    table = ChargeLine.__table__
    for offset in range(first, first + count, CHUNK):
        rows = [{
            "period_id": period_id, "source_key": f"bench:{n}", "kind": "time",
            "charge_type": "instrument_hour", "team_id": team_id, "account_id": account_id,
            "occurred_at": start + timedelta(seconds=n), "description": f"Bench session {n}",
            "quantity": Decimal("1.5000"), "unit_amount": Decimal("100.0000"),
            "amount": Decimal("150.00"), "missing_rate": False,
            "explanation": {"billed_minutes": 90, "fee_factor": "1", "basis": "booked"},
            "updated_at": start,
        } for n in range(offset, min(offset + CHUNK, first + count))]
        db.session.execute(table.insert(), rows)
        db.session.commit()


def _export_in_child(name: str, period_id: int, queue: Any) -> None:
    db.engine.dispose(close=False)  # the parent's connections stay the parent's
    period = db.session.get(BillingPeriod, period_id)
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        written = EXPORTS[name](period, out)
        seconds = time.perf_counter() - started
        size = out.tell()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put({"lines": written, "seconds": round(seconds, 1),
               "peak RSS MiB": round(peak, 1), "file MiB": round(size / 2**20, 1)})


def measured(name: str, period_id: int) -> dict[str, Any]:
    """Run one export in a forked process: its peak resident memory is the export's."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_export_in_child, args=(name, period_id, queue))
    child.start()
    result = queue.get()
    child.join()
    return result


def measure_backend(url: str) -> dict[str, Any]:
    app = make_app(url)
    with app.app_context():
        upgrade()
        account = factories.make_account(spending_limit=None)
        period = get_period(MONTH)
        db.session.commit()
        tenth = max(LINES // 10, 1)
        add_lines(period.id, account.team_id, account.id, 0, tenth)
        small = measured("csv", period.id), measured("xlsx", period.id)
        add_lines(period.id, account.team_id, account.id, tenth, LINES - tenth)
        large = measured("csv", period.id), measured("xlsx", period.id)
        db.session.remove()
        db.engine.dispose()
    return {
        f"csv, {tenth:,} lines": small[0], f"csv, {LINES:,} lines": large[0],
        f"xlsx, {tenth:,} lines": small[1], f"xlsx, {LINES:,} lines": large[1],
        "peak RSS ratio, csv (all / tenth)": round(
            large[0]["peak RSS MiB"] / small[0]["peak RSS MiB"], 2),
        "peak RSS ratio, xlsx (all / tenth)": round(
            large[1]["peak RSS MiB"] / small[1]["peak RSS MiB"], 2),
    }


def run() -> dict[str, Any]:
    return on_each_backend(measure_backend)
