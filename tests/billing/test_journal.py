"""The journal CSV: one balanced entry per statement; revenue per facility account, tax
payable, adjustments to the default revenue account; closed periods re-export identically."""
from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pytest
import sqlalchemy as sa

from labbook.billing import journal
from labbook.billing.adjustments import approve_adjustment, request_adjustment
from labbook.billing.models import ChargeLine
from labbook.billing.periods import get_period
from labbook.extensions import db
from tests import factories as f
from tests.billing.test_exports import (
    OCTOBER,
    closed_october,
    draft_october,
    export,
    make_scene,
    read_csv,
)


def entries(rows: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    grouped: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        grouped[row["entry"]].append(row)
    return grouped


def balance(rows: list[dict[str, str]]) -> tuple[Decimal, Decimal]:
    return (sum((Decimal(r["debit"] or 0) for r in rows), Decimal(0)),
            sum((Decimal(r["credit"] or 0) for r in rows), Decimal(0)))


def test_every_entry_balances_and_posts_to_the_right_accounts(app) -> None:
    make_scene()
    period = closed_october()
    rows = read_csv(export(journal.write_journal_csv, period))
    assert {r["date"] for r in rows} == {"2026-10-31"}
    grouped = entries(rows)
    assert len(grouped) == 2
    for entry_rows in grouped.values():
        debit, credit = balance(entry_rows)
        assert debit == credit and debit > 0
    postings = {(r["account"], r["debit"], r["credit"]) for r in rows}
    assert ("NANO-GRANT-1", "303.69", "") in postings
    assert ("6001", "", "286.50") in postings
    assert ("2221", "", "17.19") in postings
    assert ("OPT-1", "60.00", "") in postings
    assert all(r["statement_number"].startswith("LB-") for r in rows)


def test_facility_accounts_override_the_default_revenue_account(app) -> None:
    make_scene()
    app.config["LABBOOK_JOURNAL_FACILITY_ACCOUNTS"] = "NANO=6002, OTHER=6009"
    try:
        rows = read_csv(export(journal.write_journal_csv, draft_october()))
    finally:
        app.config["LABBOOK_JOURNAL_FACILITY_ACCOUNTS"] = ""
    revenue = {r["account"] for r in rows if r["credit"] and r["account"] != "2221"}
    assert revenue == {"6002"}
    assert {r["status"] for r in rows} == {"draft"}
    assert {r["statement_number"] for r in rows} == {""}


def test_adjustment_of_a_facility_line_reduces_that_facility_revenue(app) -> None:
    scene = make_scene()
    app.config["LABBOOK_JOURNAL_FACILITY_ACCOUNTS"] = "NANO=6002"
    try:
        draft_october()
        line = db.session.scalar(sa.select(ChargeLine).where(
            ChargeLine.team_id == scene.team.id, ChargeLine.kind == "time"))
        asker, decider = f.make_user(roles=("finance",)), f.make_user(roles=("finance",))
        approve_adjustment(decider, request_adjustment(asker, line, "-40.00", "Beam down"))
        rows = read_csv(export(journal.write_journal_csv, draft_october()))
    finally:
        app.config["LABBOOK_JOURNAL_FACILITY_ACCOUNTS"] = ""
    for entry_rows in entries(rows).values():
        debit, credit = balance(entry_rows)
        assert debit == credit
    postings = {(r["account"], r["debit"], r["credit"]) for r in rows}
    assert ("6002", "", "246.50") in postings
    assert ("NANO-GRANT-1", "261.29", "") in postings  # 246.50 + 6% tax 14.79


def test_line_without_instrument_or_consumable_credits_default_revenue(app) -> None:
    scene = make_scene()
    app.config["LABBOOK_JOURNAL_FACILITY_ACCOUNTS"] = "NANO=6002"
    try:
        period = draft_october()
        db.session.add(ChargeLine(
            period_id=period.id, source_key="adjustment:test", kind="adjustment",
            team_id=scene.team.id, account_id=scene.account.id, occurred_at=scene_time(),
            description="Goodwill credit",
            quantity=Decimal(1), amount=Decimal("-300.00"), explanation={}))
        db.session.flush()
        rows = read_csv(export(journal.write_journal_csv, period))
    finally:
        app.config["LABBOOK_JOURNAL_FACILITY_ACCOUNTS"] = ""
    nano = [r for r in rows if r["description"].startswith("纳米")]
    debit, credit = balance(nano)
    assert debit == credit
    postings = {(r["account"], r["debit"], r["credit"]) for r in nano}
    # 286.50 - 300.00 = -13.50 (tax -0.81): the team's account is credited, default revenue
    # debited, the facility's revenue credited.
    assert ("6001", "300.00", "") in postings
    assert ("6002", "", "286.50") in postings
    assert ("NANO-GRANT-1", "", "14.31") in postings
    assert ("2221", "0.81", "") in postings


def scene_time():  # type: ignore[no-untyped-def]
    from datetime import datetime, timezone

    return datetime(2026, 10, 25, 2, 0, tzinfo=timezone.utc)


def test_tax_split_over_accounts_adds_up_to_the_tax() -> None:
    shares = journal._split_tax(Decimal("0.10"), {
        "A": Decimal("1.00"), "B": Decimal("1.00"), "C": Decimal("1.00")})
    assert sum(shares.values()) == Decimal("0.10")
    assert shares["A"] == Decimal("0.03")


def test_malformed_facility_accounts_are_refused() -> None:
    with pytest.raises(ValueError):
        journal.facility_accounts("NANO6002")
    assert journal.facility_accounts(" A=1 ,, B=2 ") == {"A": "1", "B": "2"}


def test_closed_journal_re_exports_byte_identical(app) -> None:
    make_scene()
    first = export(journal.write_journal_csv, closed_october())
    db.session.expire_all()
    assert export(journal.write_journal_csv, get_period(OCTOBER)) == first
