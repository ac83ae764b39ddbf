"""Usage import: the happy path (sessions, late cancellation, consumables, audit), and
every kind of bad row reported by line number with nothing written."""
from __future__ import annotations

from datetime import timezone

import pytest
import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.billing.closing import close_period
from labbook.billing.imports import import_usage
from labbook.billing.models import UsageItem
from labbook.bookings.models import Booking
from labbook.errors import ValidationError
from labbook.extensions import db
from tests.billing.test_exports import OCTOBER, make_scene

HEADER = ("instrument,user,team,account,booked_start,booked_end,actual_start,actual_end,"
          "state,cancelled_at,assisted,consumable,quantity")
COMPLETED = ("SEM-01,li@example.org,纳米材料课题组,,2026-11-02T09:00+08:00,"
             "2026-11-02T11:00+08:00,2026-11-02T09:05+08:00,2026-11-02T10:50+08:00,"
             "completed,,true,,")
LATE = ("SEM-01,li@example.org,纳米材料课题组,NANO-GRANT-1,2026-11-03T09:00+08:00,"
        "2026-11-03T10:00+08:00,,,cancelled,2026-11-03T08:00+08:00,false,,")
EARLY = ("SEM-01,li@example.org,纳米材料课题组,NANO-GRANT-1,2026-11-04T09:00+08:00,"
         "2026-11-04T10:00+08:00,,,cancelled,2026-10-20T08:00+08:00,false,,")
NO_SHOW = ("SEM-01,li@example.org,纳米材料课题组,,2026-11-02T09:30+08:00,"
           "2026-11-02T10:30+08:00,,,no_show,,false,,")
WAFERS = ",li@example.org,纳米材料课题组,,,,2026-11-05T14:00+08:00,,,,,WAFER,2.5"


def csv_of(*rows: str) -> bytes:
    return ("\ufeff" + "\n".join((HEADER,) + rows) + "\n").encode()


def counts() -> tuple[int, int, int]:
    return (db.session.scalar(sa.select(sa.func.count()).select_from(Booking)),
            db.session.scalar(sa.select(sa.func.count()).select_from(UsageItem)),
            db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry)))


def refused(data: bytes) -> dict[str, list[str]]:
    before = counts()
    with pytest.raises(ValidationError) as caught:
        import_usage(None, data, source="old.csv")
    assert counts() == before
    return caught.value.fields


def test_import_writes_sessions_items_and_one_audit_entry(app) -> None:
    scene = make_scene()
    scene.instrument.late_cancel_notice_hours = 24
    before = counts()
    result = import_usage(None, csv_of(COMPLETED, LATE, EARLY, NO_SHOW, WAFERS),
                          source="old.csv")
    assert (result.bookings, result.items) == (4, 1)
    imported = db.session.scalars(sa.select(Booking).where(
        Booking.purpose == "imported").order_by(Booking.start_at)).all()
    assert [b.state for b in imported] == ["completed", "no_show", "cancelled", "cancelled"]
    done = imported[0]
    assert done.account_id == scene.account.id and done.assisted
    assert done.checked_in_at.astimezone(timezone.utc).hour == 1
    assert done.block_end == done.end_at and done.buffer_minutes == 0
    assert [b.late_cancel for b in imported[2:]] == [True, False]
    item = db.session.scalar(sa.select(UsageItem).where(UsageItem.quantity == 2.5))
    assert item is not None and item.consumable_id == scene.consumable.id
    assert counts() == (before[0] + 4, before[1] + 1, before[2] + 1)
    entry = db.session.scalar(sa.select(AuditEntry).order_by(AuditEntry.id.desc()))
    assert entry.action == "billing.usage_import" and entry.after["bookings"] == 4


def test_overlapping_history_rows_are_imported(app) -> None:
    """Completed and no-show rows over the same hour do not hold the slot."""
    make_scene()
    result = import_usage(None, csv_of(COMPLETED, NO_SHOW))
    assert result.bookings == 2


def test_dry_run_writes_nothing(app) -> None:
    make_scene()
    before = counts()
    result = import_usage(None, csv_of(COMPLETED, WAFERS), dry_run=True)
    assert (result.bookings, result.items, result.dry_run) == (1, 1, True)
    assert counts() == before


BAD_ROWS = {
    "unknown instrument": COMPLETED.replace("SEM-01", "NOPE-9"),
    "unknown user": COMPLETED.replace("li@example.org", "ghost@example.org"),
    "unknown team": COMPLETED.replace("纳米材料课题组", "Nobody"),
    "unknown account": LATE.replace("NANO-GRANT-1", "NOPE-ACC"),
    "not the team's": LATE.replace("NANO-GRANT-1", "OPT-1"),
    "not a member": COMPLETED.replace("纳米材料课题组", "Optics"),
    "no UTC offset": COMPLETED.replace("2026-11-02T09:00+08:00", "2026-11-02T09:00"),
    "not an ISO 8601": COMPLETED.replace("2026-11-02T09:00+08:00", "yesterday"),
    "booked_end is not after": COMPLETED.replace("T11:00+08:00", "T08:00+08:00"),
    "unknown state": COMPLETED.replace("completed", "finished"),
    "more than 0": WAFERS.replace(",2.5", ",0"),
    "not a number": WAFERS.replace(",2.5", ",lots"),
    "unknown consumable": WAFERS.replace("WAFER", "GOLD"),
    "not ended": COMPLETED.replace("2026-11-02", "2026-12-02"),
    "assisted": COMPLETED.replace(",true,", ",maybe,"),
}


@pytest.mark.parametrize("expected", sorted(BAD_ROWS))
def test_each_bad_row_kind_is_reported_with_its_line(app, expected: str) -> None:
    make_scene()
    problems = refused(csv_of(WAFERS, BAD_ROWS[expected]))
    assert list(problems) == ["line 3"]
    assert any(expected in message for message in problems["line 3"]), problems


def test_every_bad_row_is_reported(app) -> None:
    make_scene()
    problems = refused(csv_of(BAD_ROWS["unknown user"], COMPLETED, BAD_ROWS["unknown state"],
                              BAD_ROWS["more than 0"]))
    assert list(problems) == ["line 2", "line 4", "line 5"]


def test_row_in_a_closed_period_is_refused(app) -> None:
    make_scene()
    close_period(None, OCTOBER, force=True)
    october = COMPLETED.replace("2026-11-02", "2026-10-02")
    problems = refused(csv_of(COMPLETED, october))
    assert list(problems) == ["line 3"]
    assert "closed" in problems["line 3"][0]


def test_unreadable_files_are_refused(app) -> None:
    with pytest.raises(ValidationError):
        import_usage(None, b"\xff\xfe\x00bad")
    with pytest.raises(ValidationError, match="Missing columns"):
        import_usage(None, b"instrument,state\nX,completed\n")
    with pytest.raises(ValidationError, match="no rows"):
        import_usage(None, csv_of())
