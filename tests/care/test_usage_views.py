"""Usage reconciliation pages: who sees them, the figures, month navigation, the CSV, and
correcting or confirming a session through the form; both databases."""
from __future__ import annotations

import csv
import io

import pytest
import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.extensions import db
from tests import factories
from tests.bookings.view_support import as_user, post_form
from tests.care.test_usage_support import NOW, at, close_period, usage_scene
from tests.instruments import page


@pytest.fixture
def s(app, client, monkeypatch):  # type: ignore[no-untyped-def]
    for module in ("labbook.care.views_usage", "labbook.care.views_dashboard",
                   "labbook.care.api_usage"):
        monkeypatch.setattr(f"{module}.now_utc", lambda: NOW)
    return usage_scene()


def _url(s, suffix: str = "") -> str:  # type: ignore[no-untyped-def]
    return f"/manage/facilities/{s.facility.id}/usage{suffix}"


def _row_ids(html) -> list[str]:  # type: ignore[no-untyped-def]
    return [tr.attrs["id"] for tr in html.find("tr") if tr.attrs.get("id", "").startswith("usage-")]


# -- who may see ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role, status", [
    ("manager", 200), ("finance", 200), ("admin", 200),
    ("other_manager", 403), ("researcher", 403), ("team_lead", 403),
])
def test_reconciliation_access(client, s, role, status):
    user = {
        "manager": lambda: s.manager,
        "other_manager": lambda: factories.make_user_with_role("facility_manager"),
    }.get(role, lambda: factories.make_user_with_role(role))()
    db.session.commit()
    as_user(client, user)
    assert client.get(_url(s, "?month=2026-03")).status_code == status
    assert client.get(_url(s, ".csv?month=2026-03")).status_code == status


def test_reconciliation_unknown_facility_is_404(client, s):
    as_user(client, s.manager)
    assert client.get("/manage/facilities/999999/usage").status_code == 404


def test_reconciliation_needs_login(client, s):
    response = client.get(_url(s))
    assert response.status_code in (302, 401)
    assert "/login" in response.headers.get("Location", "/login")


# -- what it shows --------------------------------------------------------------------------------


def test_reconciliation_lists_sessions_with_figures_and_flags(client, s):
    as_user(client, s.manager)
    html = page(client.get(_url(s, "?month=2026-03")))
    assert _row_ids(html) == [f"usage-{b.id}" for b in (
        s.first_local, s.done, s.no_show, s.walk_in, s.running)]
    done = html.one("tr", id_=f"usage-{s.done.id}").text
    assert "Alice Booker" in done and "+15" in done and "overrun" in done
    assert "2026-03-02 10:00–11:00" in done and "10:05–11:20" in done
    assert "no-show" in html.one("tr", id_=f"usage-{s.no_show.id}").text
    assert "open session" in html.one("tr", id_=f"usage-{s.running.id}").text
    walk_in = html.one("tr", id_=f"usage-{s.walk_in.id}").text
    assert "walk-in" in walk_in and "review" in walk_in
    cells = html.elements[html.elements.index(html.one("tr", id_=f"total-{s.sem.id}")):]
    sem = [e.text for e in cells if e.tag == "td"][:7]
    assert sem == ["2", "300", "75", "1", "1", "1", "0"]


def test_reconciliation_defaults_to_the_current_local_month_and_navigates(client, s):
    as_user(client, s.manager)
    html = page(client.get(_url(s)))
    assert len(_row_ids(html)) == 5
    assert html.one("a", rel="prev").attrs["href"].endswith("month=2026-02")
    assert html.one("a", rel="next").attrs["href"].endswith("month=2026-04")
    april = page(client.get(_url(s, "?month=2026-04")))
    assert len(_row_ids(april)) == 1
    assert _row_ids(page(client.get(_url(s, "?month=2026-13")))) == _row_ids(html)


def test_reconciliation_finance_sees_no_correction_forms(client, s):
    as_user(client, factories.make_user_with_role("finance"))
    db.session.commit()
    html = client.get(_url(s, "?month=2026-03")).get_data(as_text=True)
    assert "Alice Booker" in html and "/correct" not in html and "/confirm" not in html


def test_reconciliation_csv_has_the_same_rows(client, s):
    as_user(client, s.manager)
    response = client.get(_url(s, ".csv?month=2026-03"))
    assert response.mimetype == "text/csv"
    assert "usage-" in response.headers["Content-Disposition"]
    text = response.get_data(as_text=True).lstrip("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["booking_id"]) for r in rows] == [
        s.first_local.id, s.done.id, s.no_show.id, s.walk_in.id, s.running.id]
    done = rows[1]
    assert done["booked_start"] == "2026-03-02T10:00:00+08:00"
    assert done["actual_end"] == "2026-03-02T11:20:00+08:00"
    assert (done["booked_minutes"], done["actual_minutes"], done["difference_minutes"]) == (
        "60", "75", "15")
    assert (done["overrun"], done["no_show"], done["open"]) == ("1", "0", "0")
    assert rows[4]["actual_end"] == "" and rows[4]["open"] == "1"


def test_reconciliation_csv_defuses_formulas(client, s):
    s.booker.name = "=HYPERLINK(\"x\")"
    db.session.commit()
    as_user(client, s.manager)
    text = client.get(_url(s, ".csv?month=2026-03")).get_data(as_text=True)
    assert "'=HYPERLINK" in text


# -- correcting -----------------------------------------------------------------------------------


def _correct(client, s, booking, **data):  # type: ignore[no-untyped-def]
    form = {"in_date": "2026-03-02", "in_time": "10:00", "out_date": "2026-03-02",
            "out_time": "11:00", "reason": "Forgot to check out", "month": "2026-03", **data}
    return post_form(client, _url(s, f"/{booking.id}/correct"), form,
                     page=_url(s, "?month=2026-03"))


def test_correct_form_saves_local_times(client, s):
    as_user(client, s.manager)
    response = _correct(client, s, s.done)
    assert response.status_code == 302 and response.headers["Location"].endswith("month=2026-03")
    db.session.refresh(s.done)
    assert (s.done.checked_in_at, s.done.checked_out_at) == (at(2, 2), at(2, 3))
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "usage.correct"))
    assert entry.after["reason"] == "Forgot to check out"


def test_correct_form_invalid_rerenders_with_errors(client, s):
    as_user(client, s.manager)
    response = _correct(client, s, s.done, out_time="09:00")
    assert response.status_code == 422
    html = page(response)
    assert html.one("details", cls="confirm", open="").text.count("Must be after the start")
    db.session.refresh(s.done)
    assert s.done.checked_in_at == at(2, 2, 5)


def test_correct_form_missing_reason_is_422(client, s):
    as_user(client, s.manager)
    assert _correct(client, s, s.done, reason="").status_code == 422


def test_correct_form_in_a_closed_period_is_refused(client, s):
    close_period(at(1, 0).date())
    as_user(client, s.manager)
    response = _correct(client, s, s.done)
    assert response.status_code == 409
    assert "billing period" in page(response).one("div", id_="refusal").text
    db.session.refresh(s.done)
    assert s.done.checked_out_at == at(2, 3, 20)


@pytest.mark.parametrize("role", ["finance", "other_manager"])
def test_correct_form_forbidden_to_non_managers(client, s, role):
    user = factories.make_user_with_role("facility_manager" if role == "other_manager" else role)
    db.session.commit()
    as_user(client, user)
    response = _correct(client, s, s.done)
    assert response.status_code == 403
    db.session.refresh(s.done)
    assert s.done.checked_out_at == at(2, 3, 20)


def test_correct_form_booking_of_another_facility_is_404(client, s):
    elsewhere = factories.make_booking(state="completed", start=at(3, 2), end=at(3, 3),
                                       checked_in_at=at(3, 2), checked_out_at=at(3, 3))
    db.session.commit()
    as_user(client, s.manager)
    assert _correct(client, s, elsewhere).status_code == 404


def test_correct_form_needs_csrf(client, s):
    as_user(client, s.manager)
    response = client.post(_url(s, f"/{s.done.id}/correct"), data={
        "in_date": "2026-03-02", "in_time": "10:00", "out_date": "2026-03-02",
        "out_time": "11:00", "reason": "x"})
    assert response.status_code in (400, 422)
    db.session.refresh(s.done)
    assert s.done.checked_out_at == at(2, 3, 20)


def test_confirm_button_clears_needs_review(client, s):
    as_user(client, s.manager)
    response = post_form(client, _url(s, f"/{s.walk_in.id}/confirm"), {"month": "2026-03"},
                         page=_url(s, "?month=2026-03"))
    assert response.status_code == 302
    db.session.refresh(s.walk_in)
    assert s.walk_in.needs_review is False
