"""Period exports: lines CSV and XLSX, the per-team summary; re-exports of a closed
period are byte-identical, a draft says so."""
from __future__ import annotations

import csv
import inspect
import io
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal

from openpyxl import load_workbook

from labbook.billing import exports
from labbook.billing.closing import close_period
from labbook.billing.models import BillingPeriod
from labbook.billing.periods import get_period
from labbook.billing.statements import refresh_period, statements_for
from labbook.extensions import db
from tests import factories as f

OCTOBER = date(2026, 10, 1)
CHINESE_TEAM = "纳米材料课题组"


@dataclass
class Scene:
    facility: object
    instrument: object
    team: object
    account: object
    other_team: object
    user: object
    consumable: object


def make_scene() -> Scene:
    """Two teams with October charges: a 2-hour session at 120.00/h and 3 wafers at 15.50
    for the Chinese-named external team (6% tax), a 1-hour session for an internal one."""
    facility = f.make_facility(code="NANO")
    instrument = f.make_instrument(facility, asset_code="SEM-01")
    f.make_policy(instrument, basis="booked", increment_minutes=15)
    team = f.make_team("external_academic", name=CHINESE_TEAM, invoice_title="某大学",
                       tax_id="91310000TAX")
    account = f.make_account(team=team, code="NANO-GRANT-1", is_default=True,
                             spending_limit=None)
    user = f.make_user_with_role("researcher", team=team, email="li@example.org")
    for klass, amount in (("external_academic", "120.00"), ("internal", "60.00")):
        f.make_rate(instrument, amount, customer_class=klass)
    consumable = f.make_consumable(facility, code="WAFER")
    f.make_rate(None, "15.50", consumable=consumable, customer_class="external_academic")
    start = datetime(2026, 10, 12, 1, 0, tzinfo=timezone.utc)
    f.make_booking(instrument, user, account=account, start=start,
                   end=datetime(2026, 10, 12, 3, 0, tzinfo=timezone.utc), state="completed",
                   checked_in_at=start,
                   checked_out_at=datetime(2026, 10, 12, 3, 0, tzinfo=timezone.utc))
    f.make_item(account, "3", consumable=consumable, user_id=user.id,
                occurred_at=datetime(2026, 10, 20, 2, 0, tzinfo=timezone.utc))
    other_team = f.make_team("internal", name="Optics")
    other_account = f.make_account(team=other_team, code="OPT-1", is_default=True,
                                   spending_limit=None)
    other_user = f.make_user_with_role("researcher", team=other_team)
    f.make_booking(instrument, other_user, account=other_account,
                   start=datetime(2026, 10, 13, 1, 0, tzinfo=timezone.utc),
                   end=datetime(2026, 10, 13, 2, 0, tzinfo=timezone.utc), state="completed",
                   checked_in_at=datetime(2026, 10, 13, 1, 0, tzinfo=timezone.utc),
                   checked_out_at=datetime(2026, 10, 13, 2, 0, tzinfo=timezone.utc))
    return Scene(facility, instrument, team, account, other_team, user, consumable)


def closed_october() -> BillingPeriod:
    close_period(None, OCTOBER, force=True)
    return get_period(OCTOBER)


def draft_october() -> BillingPeriod:
    refresh_period(OCTOBER)
    return get_period(OCTOBER)


def export(writer, period) -> bytes:  # type: ignore[no-untyped-def]
    out = io.BytesIO()
    writer(period, out)
    return out.getvalue()


def read_csv(data: bytes) -> list[dict[str, str]]:
    assert data.startswith("\ufeff".encode())
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def test_lines_csv_has_one_row_per_line_with_key_facts(app) -> None:
    make_scene()
    period = closed_october()
    rows = read_csv(export(exports.write_lines_csv, period))
    assert len(rows) == 3
    session = next(r for r in rows if r["team"] == CHINESE_TEAM and r["kind"] == "time")
    assert session["status"] == "closed"
    assert session["period"] == "2026-10"
    assert session["statement_number"].startswith("LB-")
    assert session["customer_class"] == "external_academic"
    assert session["account"] == "NANO-GRANT-1"
    assert session["instrument"] == "SEM-01"
    assert session["user_email"] == "li@example.org"
    assert session["occurred_at"] == "2026-10-12T09:00:00+08:00"
    assert session["amount"] == "240.00"
    assert session["billed_minutes"] == "120"
    assert session["rate_effective_from"] == "2020-01-01"
    wafer = next(r for r in rows if r["kind"] == "unit")
    assert (wafer["consumable"], wafer["quantity"], wafer["amount"]) == ("WAFER", "3", "46.50")


def test_closed_period_re_exports_byte_identical(app) -> None:
    make_scene()
    period = closed_october()
    for writer in (exports.write_lines_csv, exports.write_lines_xlsx,
                   exports.write_summary_csv):
        first = export(writer, period)
        db.session.expire_all()
        assert export(writer, get_period(OCTOBER)) == first, writer.__name__


def test_draft_export_says_draft_and_has_no_numbers(app) -> None:
    make_scene()
    period = draft_october()
    rows = read_csv(export(exports.write_lines_csv, period))
    assert {r["status"] for r in rows} == {"draft"}
    assert {r["statement_number"] for r in rows} == {""}
    summary = read_csv(export(exports.write_summary_csv, period))
    assert {r["status"] for r in summary} == {"draft"}


def test_xlsx_has_the_same_lines_and_fixed_zip_dates(app) -> None:
    make_scene()
    period = closed_october()
    data = export(exports.write_lines_xlsx, period)
    sheet = load_workbook(io.BytesIO(data), read_only=True).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == exports.LINE_COLUMNS
    assert len(rows) == 4
    amount = rows[0].index("amount")
    assert sorted(r[amount] for r in rows[1:]) == [46.5, 60.0, 240.0]
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        stamps = {info.date_time for info in archive.infolist()}
    closed = period.closed_at.astimezone(timezone.utc)
    # Zip times have a resolution of two seconds.
    assert stamps == {(closed.year, closed.month, closed.day, closed.hour, closed.minute,
                       closed.second // 2 * 2)}


def test_summary_has_a_row_per_team_and_totals_that_add_up(app) -> None:
    make_scene()
    period = closed_october()
    rows = read_csv(export(exports.write_summary_csv, period))
    teams = {r["team"]: r for r in rows}
    assert set(teams) == {CHINESE_TEAM, "Optics", "TOTAL"}
    nano = teams[CHINESE_TEAM]
    assert (nano["subtotal"], nano["tax"], nano["total"]) == ("286.50", "17.19", "303.69")
    assert teams["Optics"]["total"] == "60.00"
    assert teams["TOTAL"]["total"] == "363.69"
    views = statements_for(period)
    assert sum((v.total for v in views), Decimal(0)) == Decimal("363.69")


def test_progress_is_told_every_row_and_text_that_looks_like_a_formula_is_quoted(app) -> None:
    scene = make_scene()
    scene.account.code = "=HYPERLINK(1)"
    db.session.flush()
    period = draft_october()
    told: list[int] = []
    out = io.BytesIO()
    assert exports.write_lines_csv(period, out, told.append) == 3
    assert sum(told) == 3
    rows = read_csv(out.getvalue())
    assert "'=HYPERLINK(1)" in {r["account"] for r in rows}


def test_empty_period_exports_only_the_header(app) -> None:
    period = get_period(date(2026, 9, 1))
    rows = read_csv(export(exports.write_lines_csv, period))
    assert rows == []
    summary = read_csv(export(exports.write_summary_csv, period))
    assert [r["team"] for r in summary] == ["TOTAL"]


# -- downloads -----------------------------------------------------------------------------


def test_finance_downloads_every_format_as_attachment(app, client, login_as) -> None:
    make_scene()
    closed_october()
    db.session.commit()
    login_as("finance")
    bodies = {}
    for fmt, mimetype in (("csv", "text/csv"), ("xlsx", "application/vnd.openxmlformats"),
                          ("summary", "text/csv"), ("journal", "text/csv"),
                          ("pdf", "application/pdf")):
        response = client.get(f"/billing/periods/2026-10/export/{fmt}")
        assert response.status_code == 200, fmt
        assert response.mimetype.startswith(mimetype)
        assert response.headers["Content-Disposition"].startswith("attachment")
        assert "2026-10-closed" in response.headers["Content-Disposition"]
        bodies[fmt] = response.get_data()
    assert client.get("/billing/periods/2026-10/export/csv").get_data() == bodies["csv"]
    assert read_csv(bodies["csv"])[0]["status"] == "closed"


def test_export_of_an_open_month_refreshes_it(app, client, login_as) -> None:
    make_scene()
    login_as("admin")
    response = client.get("/billing/periods/2026-10/export/csv")
    assert response.status_code == 200
    rows = read_csv(response.get_data())
    assert len(rows) == 3 and rows[0]["status"] == "draft"


def test_export_refused_to_non_finance_and_unknown_format(app, client, login_as) -> None:
    make_scene()
    login_as("facility_manager")
    assert client.get("/billing/periods/2026-10/export/csv").status_code == 403
    assert get_period(OCTOBER).refreshed_at is None  # nothing was refreshed


def test_unknown_format_and_bad_month_are_not_found(app, client, login_as) -> None:
    login_as("finance")
    assert client.get("/billing/periods/2026-10/export/docx").status_code == 404
    assert client.get("/billing/periods/2026-13/export/csv").status_code == 404


def test_team_lead_downloads_own_statement_only(app, client, login_as) -> None:
    scene = make_scene()
    closed_october()
    db.session.commit()
    login_as("team_lead", team=scene.team)
    own = client.get(f"/billing/periods/2026-10/statements/{scene.team.id}.pdf")
    assert own.status_code == 200 and own.mimetype == "application/pdf"
    assert own.get_data().startswith(b"%PDF")
    other = client.get(f"/billing/periods/2026-10/statements/{scene.other_team.id}.pdf")
    assert other.status_code == 403


def test_statement_pdf_roles_and_missing_statement(app, client, login_as) -> None:
    scene = make_scene()
    closed_october()
    db.session.commit()
    login_as("researcher", team=scene.team)
    assert client.get(
        f"/billing/periods/2026-10/statements/{scene.team.id}.pdf").status_code == 403


def test_statement_pdf_not_found_for_a_team_without_statement(app, client, login_as) -> None:
    make_scene()
    closed_october()
    empty = f.make_team("internal", name="Empty team")
    db.session.commit()
    login_as("finance")
    assert client.get(f"/billing/periods/2026-10/statements/{empty.id}.pdf").status_code == 404


def test_lines_are_streamed_not_listed(app) -> None:
    """A million lines must not become a list: the query is read in batches."""
    period = get_period(date(2026, 9, 1))
    query = exports._line_query(period)
    assert query.get_execution_options()["yield_per"] == exports.BATCH
    assert inspect.isgenerator(exports.line_rows(period))
