"""Statement PDFs: Chinese renders (an embedded TrueType subset, or the built-in CID font),
totals appear, output is deterministic."""
from __future__ import annotations

import io
import string
from datetime import timezone
from pathlib import Path

import pytest
from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen
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


# -- the font ---------------------------------------------------------------------------------


def _box():  # type: ignore[no-untyped-def]
    pen = TTGlyphPen(None)
    pen.moveTo((100, 0))
    pen.lineTo((100, 700))
    pen.lineTo((500, 700))
    pen.lineTo((500, 0))
    pen.closePath()
    return pen.glyph()


@pytest.fixture
def truetype(tmp_path: Path) -> Path:
    """A small TrueType font (box glyphs) covering ASCII and the scene's Chinese, made here
    so the test needs no font package."""
    chars = sorted(set(string.printable.strip() + " " + CHINESE_TEAM + "某大学"))
    names = {ord(c): f"uni{ord(c):04X}" for c in chars}
    builder = FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder([".notdef", *names.values()])
    builder.setupCharacterMap(names)
    builder.setupGlyf({name: _box() for name in [".notdef", *names.values()]})
    builder.setupHorizontalMetrics({name: (600, 100) for name in [".notdef", *names.values()]})
    builder.setupHorizontalHeader(ascent=800, descent=-200)
    builder.setupNameTable({"familyName": "Labbook Test", "styleName": "Regular"})
    builder.setupOS2(sTypoAscender=800, usWinAscent=800, usWinDescent=200)
    builder.setupPost()
    path = tmp_path / "labbook-test.ttf"
    builder.save(str(path))
    return path


def test_a_truetype_font_is_embedded_as_a_subset(app, monkeypatch, truetype) -> None:
    monkeypatch.setitem(app.config, "LABBOOK_PDF_FONT", str(truetype))
    scene = make_scene()
    period = closed_october()
    data = render(pdf.write_statement_pdf, period, scene.team.id)
    assert b"/FontFile2" in data and b"STSong-Light" not in data
    text = extract_text(io.BytesIO(data))
    assert CHINESE_TEAM in text and "某大学" in text and "303.69" in text
    assert render(pdf.write_statement_pdf, get_period(OCTOBER), scene.team.id) == data


def test_builtin_keeps_the_cid_font_unembedded(app, monkeypatch) -> None:
    monkeypatch.setitem(app.config, "LABBOOK_PDF_FONT", "builtin")
    scene = make_scene()
    data = render(pdf.write_statement_pdf, closed_october(), scene.team.id)
    assert b"STSong-Light" in data and b"/FontFile2" not in data
    assert CHINESE_TEAM in extract_text(io.BytesIO(data))


def test_a_font_that_cannot_be_embedded_falls_back_and_says_so(
        app, monkeypatch, tmp_path, caplog) -> None:
    broken = tmp_path / "not-a-font.ttf"
    broken.write_bytes(b"this is not a font")
    monkeypatch.setitem(app.config, "LABBOOK_PDF_FONT", str(broken))
    scene = make_scene()
    data = render(pdf.write_statement_pdf, closed_october(), scene.team.id)
    assert b"STSong-Light" in data and CHINESE_TEAM in extract_text(io.BytesIO(data))
    assert "cannot be embedded" in caplog.text


def test_without_a_setting_the_first_installed_candidate_is_used(
        monkeypatch, tmp_path, truetype) -> None:
    monkeypatch.setattr(pdf, "CANDIDATES", (str(tmp_path / "missing.ttc"), str(truetype)))
    assert pdf.font_file("") == str(truetype)
    assert pdf.font_file("/srv/fonts/own.ttf") == "/srv/fonts/own.ttf"
    assert pdf.font_file("builtin") is None
    monkeypatch.setattr(pdf, "CANDIDATES", (str(tmp_path / "missing.ttc"),))
    assert pdf.font_file("") is None
