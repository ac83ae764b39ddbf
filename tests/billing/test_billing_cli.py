"""The billing and usage commands: one commit on success; a refusal rolls back, says why
and exits non-zero."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from labbook.billing.models import BillingPeriod, ChargeLine, Statement
from labbook.billing.periods import find_period
from labbook.bookings.models import Booking
from labbook.extensions import db
from tests import factories as f
from tests.billing.test_exports import CHINESE_TEAM, OCTOBER, make_scene
from tests.billing.test_usage_import import COMPLETED, csv_of


def scene_committed():  # type: ignore[no-untyped-def]
    scene = make_scene()
    db.session.commit()
    return scene


def count(model) -> int:  # type: ignore[no-untyped-def]
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_refresh_writes_the_draft_lines(app, runner) -> None:
    scene_committed()
    result = runner.invoke(args=["billing", "refresh", "2026-10"])
    assert result.exit_code == 0, result.output
    assert "3 lines added" in result.output
    assert count(ChargeLine) == 3
    again = runner.invoke(args=["billing", "refresh", "2026-10"])
    assert "0 lines added, 0 changed, 0 removed" in again.output


def test_close_prints_statements_then_a_second_close_fails(app, runner) -> None:
    scene_committed()
    result = runner.invoke(args=["billing", "close", "2026-10"])
    assert result.exit_code == 0, result.output
    assert CHINESE_TEAM in result.output and "303.69" in result.output
    assert "total 363.69" in result.output
    assert count(Statement) == 2
    again = runner.invoke(args=["billing", "close", "2026-10"])
    assert again.exit_code == 1
    assert "closed already" in again.output
    assert count(Statement) == 2


def test_close_with_checklist_problems_lists_them_and_exits_1(app, runner) -> None:
    scene = scene_committed()
    f.make_booking(scene.instrument, scene.user, account=scene.account, state="confirmed",
                   start=datetime(2026, 10, 28, 1, 0, tzinfo=timezone.utc))
    db.session.commit()
    result = runner.invoke(args=["billing", "close", "2026-10", "--force"])
    assert result.exit_code == 1
    assert "unsettled" in result.output
    period = find_period(OCTOBER)
    assert period is None or period.closed_at is None
    assert count(ChargeLine) == 0  # the close's refresh was rolled back too
    assert count(Statement) == 0


def test_close_of_an_unfinished_month_and_a_bad_month_fail(app, runner) -> None:
    assert runner.invoke(args=["billing", "close", "2026-11"]).exit_code == 1
    bad = runner.invoke(args=["billing", "close", "2026-13"])
    assert bad.exit_code == 1 and "YYYY-MM" in bad.output
    assert count(BillingPeriod) == 0


def test_export_every_format_and_closed_exports_repeat_byte_identical(
        app, runner, tmp_path: Path) -> None:
    scene_committed()
    assert runner.invoke(args=["billing", "close", "2026-10", "--force"]).exit_code == 0
    for fmt in ("csv", "xlsx", "pdf", "journal", "summary"):
        first, second = tmp_path / f"a.{fmt}", tmp_path / f"b.{fmt}"
        for path in (first, second):
            result = runner.invoke(args=["billing", "export", "2026-10", "--format", fmt,
                                         "--out", str(path)])
            assert result.exit_code == 0, result.output
            assert "closed" in result.output
        assert first.read_bytes() == second.read_bytes(), fmt
        assert first.stat().st_size > 100


def test_export_of_an_open_month_refreshes_and_says_draft(app, runner, tmp_path: Path) -> None:
    scene_committed()
    out = tmp_path / "lines.csv"
    result = runner.invoke(args=["billing", "export", "2026-10", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "3 rows, draft" in result.output
    assert out.read_text(encoding="utf-8-sig").count("\ndraft,") == 3


def test_export_to_an_unwritable_path_fails(app, runner, tmp_path: Path) -> None:
    scene_committed()
    result = runner.invoke(args=["billing", "export", "2026-10", "--out",
                                 str(tmp_path / "missing" / "x.csv")])
    assert result.exit_code == 1
    assert "Error" in result.output


def test_usage_import_commits_and_dry_run_does_not(app, runner, tmp_path: Path) -> None:
    scene_committed()
    path = tmp_path / "usage.csv"
    path.write_bytes(csv_of(COMPLETED))
    before = count(Booking)
    dry = runner.invoke(args=["usage", "import", str(path), "--dry-run"])
    assert dry.exit_code == 0 and "Would import 1 sessions" in dry.output
    assert count(Booking) == before
    done = runner.invoke(args=["usage", "import", str(path)])
    assert done.exit_code == 0 and "Imported 1 sessions" in done.output
    assert count(Booking) == before + 1


def test_usage_import_into_a_closed_month_fails_and_writes_nothing(
        app, runner, tmp_path: Path) -> None:
    scene_committed()
    assert runner.invoke(args=["billing", "close", "2026-10", "--force"]).exit_code == 0
    path = tmp_path / "usage.csv"
    path.write_bytes(csv_of(COMPLETED, COMPLETED.replace("2026-11-02", "2026-10-02")))
    before = count(Booking)
    result = runner.invoke(args=["usage", "import", str(path)])
    assert result.exit_code == 1
    assert "line 3" in result.output and "closed" in result.output
    assert count(Booking) == before


def test_usage_import_of_a_missing_file_fails(app, runner, tmp_path: Path) -> None:
    result = runner.invoke(args=["usage", "import", str(tmp_path / "nope.csv")])
    assert result.exit_code == 1 and "Cannot read" in result.output
