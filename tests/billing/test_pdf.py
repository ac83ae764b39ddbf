"""Statement PDFs: Chinese renders (STSong-Light), totals appear, output is deterministic."""
from __future__ import annotations

import io
from datetime import timezone

import pytest
from pdfminer.high_level import extract_text

from labbook.billing import pdf
from labbook.billing.periods import get_period
from labbook.errors import NotFound
from tests.billing.test_exports import (
    CHINESE_TEAM,
    OCTOBER,
    closed_october,
    draft_october,
    make_scene,
)


def render(write, *args) -> bytes:  # type: ignore[no-untyped-def]
    out = io.BytesIO()
    write(*args, out)
    return out.getvalue()


def test_team_statement_shows_chinese_name_lines_and_totals(app) -> None:
    scene = make_scene()
    period = closed_october()
    data = render(pdf.write_statement_pdf, period, scene.team.id)
    assert data.startswith(b"%PDF")
    text = extract_text(io.BytesIO(data))
    assert CHINESE_TEAM in text
    assert "某大学" in text and "91310000TAX" in text
    assert "2026-10" in text and "LB-" in text
    for amount in ("240.00", "46.50", "286.50", "17.19", "303.69"):
        assert amount in text, amount
    assert "NANO-GRANT-1" in text and "CNY" in text
    assert "Optics" not in text


def test_period_pdf_has_every_statement_and_re_renders_identically(app) -> None:
    make_scene()
    period = closed_october()
    first = render(pdf.write_period_pdf, period)
    assert render(pdf.write_period_pdf, get_period(OCTOBER)) == first
    text = extract_text(io.BytesIO(first))
    assert CHINESE_TEAM in text and "Optics" in text


def test_draft_statement_is_marked_draft(app) -> None:
    scene = make_scene()
    period = draft_october()
    text = extract_text(io.BytesIO(render(pdf.write_statement_pdf, period, scene.team.id)))
    assert "DRAFT" in text
    assert "LB-" not in text


def test_team_without_statement_is_not_found(app) -> None:
    scene = make_scene()
    period = closed_october()
    out = io.BytesIO()
    with pytest.raises(NotFound):
        pdf.write_statement_pdf(period, scene.team.id + 10_000, out)
    assert out.getvalue() == b""


def test_pdf_is_dated_with_the_period_close(app) -> None:
    make_scene()
    period = closed_october()
    data = render(pdf.write_period_pdf, period)
    closed = period.closed_at.astimezone(timezone.utc)
    assert f"/CreationDate (D:{closed:%Y%m%d%H%M%S}+00'00')".encode() in data
