"""Statements as PDF (SPEC section 6): one team's statement, or the whole period (one
statement per page set), for sending to the team and archiving.

The font: Chinese team names and invoice titles need a CJK font. When a TrueType one is
available (``LABBOOK_PDF_FONT``, or else the first of ``CANDIDATES`` installed, e.g. Debian's
fonts-wqy-zenhei) the glyphs used are embedded as a subset, so every reader shows them. Else
(or with ``LABBOOK_PDF_FONT=builtin``) reportlab's built-in CID font STSong-Light is named
but not embedded: Acrobat with its Asian font pack and poppler with a CJK font render it,
other readers may not. Fonts with PostScript (CFF) outlines, such as Noto CJK, cannot be
embedded by reportlab: they fall back to the CID font, with a warning in the log.

Why ``invariant``: a closed period must re-export byte-identical, and reportlab otherwise
stamps the file with "now" and a random document id.
"""
from __future__ import annotations

import hashlib
import logging
import os
from datetime import timezone
from typing import IO, Any
from xml.sax.saxutils import escape

from flask import current_app
from flask_babel import gettext as _
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from labbook.billing.exports import stamp_of
from labbook.billing.models import BillingPeriod
from labbook.billing.money import fmt
from labbook.billing.periods import centre_zone
from labbook.billing.statements import StatementView, statements_for
from labbook.errors import NotFound

log = logging.getLogger(__name__)
CID_FONT = "STSong-Light"
BUILTIN = "builtin"
CANDIDATES = (  # TrueType CJK fonts of common Linux packages, tried in this order
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
)
_registered: dict[str, str] = {}  # font file (or BUILTIN) -> registered font name


def font_file(setting: str) -> str | None:
    """The TrueType file to embed: the one configured, else the first candidate installed;
    None for the built-in CID font."""
    if setting == BUILTIN:
        return None
    if setting:
        return setting
    return next((path for path in CANDIDATES if os.path.isfile(path)), None)


def _font() -> str:
    """The font name to draw with, registered once per file and process (registration is
    global in reportlab)."""
    path = font_file(current_app.config["LABBOOK_PDF_FONT"]) or BUILTIN
    if path not in _registered:
        _registered[path] = _register(path)
    return _registered[path]


def _register(path: str) -> str:
    if path != BUILTIN:
        name = "labbook-" + hashlib.sha256(path.encode()).hexdigest()[:12]
        try:
            pdfmetrics.registerFont(TTFont(name, path, subfontIndex=0))
            return name
        except (TTFError, OSError, ValueError) as error:
            log.warning("PDF font %s cannot be embedded (%s); statements use the built-in "
                        "CID font %s", path, error, CID_FONT)
    if CID_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(CID_FONT))
    return CID_FONT


def _styles() -> dict[str, ParagraphStyle]:
    font = _font()
    return {
        "title": ParagraphStyle("title", fontName=font, fontSize=16, leading=20),
        "text": ParagraphStyle("text", fontName=font, fontSize=9, leading=12),
        "cell": ParagraphStyle("cell", fontName=font, fontSize=8, leading=10),
    }


def _p(text: Any, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(str(text or "")), style)


def _header(period: BillingPeriod, view: StatementView,
            styles: dict[str, ParagraphStyle]) -> list[Any]:
    status = view.number or _("DRAFT (not final)")
    facts = [
        (_("Statement"), status), (_("Period"), period.label), (_("Team"), view.team_name),
        (_("Invoice title"), view.invoice_title or ""), (_("Tax ID"), view.tax_id or ""),
        (_("Customer class"), view.customer_class), (_("Currency"), view.currency),
    ]
    return [_p(_("Statement of charges"), styles["title"]), Spacer(1, 4 * mm)] + [
        _p(f"{label}: {value}", styles["text"]) for label, value in facts
    ] + [Spacer(1, 4 * mm)]


def _line_table(view: StatementView, styles: dict[str, ParagraphStyle]) -> Table:
    zone, cell = centre_zone(), styles["cell"]
    rows: list[list[Any]] = [[_p(_("Date"), cell), _p(_("Description"), cell),
                              _p(_("Account"), cell), _p(_("Quantity"), cell),
                              _p(_("Amount"), cell)]]
    for line in view.lines:
        rows.append([
            _p(f"{line.occurred_at.astimezone(zone):%Y-%m-%d}", cell), _p(line.description, cell),
            _p(line.account.code, cell), _p(format(line.quantity.normalize(), "f"), cell),
            _p(fmt(line.amount, view.currency), cell),
        ])
    table = Table(rows, colWidths=[22 * mm, 85 * mm, 28 * mm, 18 * mm, 25 * mm], repeatRows=1)
    table.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
        ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]))
    return table


def _totals(view: StatementView, styles: dict[str, ParagraphStyle]) -> list[Any]:
    text, code = styles["text"], view.currency
    parts: list[Any] = [Spacer(1, 4 * mm), _p(_("Per account"), text)]
    parts += [_p(f"{account}: {fmt(amount, code)} {code}", text)
              for account, amount in view.accounts.items()]
    rate = (view.tax_rate * 100).normalize()
    parts += [
        Spacer(1, 3 * mm),
        _p(f"{_('Subtotal')}: {fmt(view.subtotal, code)} {code}", text),
        _p(f"{_('Tax')} ({format(rate, 'f')}%): {fmt(view.tax, code)} {code}", text),
        _p(f"{_('Total')}: {fmt(view.total, code)} {code}", text),
    ]
    return parts


def statement_story(period: BillingPeriod, view: StatementView) -> list[Any]:
    styles = _styles()
    return _header(period, view, styles) + [_line_table(view, styles)] + _totals(view, styles)


def _build(period: BillingPeriod, views: list[StatementView], out: IO[bytes]) -> None:
    story: list[Any] = []
    for index, view in enumerate(views):
        if index:
            story.append(PageBreak())
        story += statement_story(period, view)
    if not story:
        story = [_p(_("No charges in %(month)s.", month=period.label), _styles()["text"])]
    document = SimpleDocTemplate(
        out, pagesize=A4, invariant=1, title=f"labbook {period.label}", author="labbook",
        creator="labbook", subject=period.label, leftMargin=15 * mm, rightMargin=15 * mm,
    )
    stamp = stamp_of(period).astimezone(timezone.utc)

    def date_it(canvas: Any, _doc: Any) -> None:
        """Date the file with the period's close (a fixed epoch for a draft) instead of
        reportlab's invariant 2000-01-01: it says which close the file shows."""
        timestamp = getattr(canvas._doc, "_timeStamp", None)  # reportlab internals
        if timestamp is not None:
            timestamp.YMDhms = (stamp.year, stamp.month, stamp.day, stamp.hour,
                                stamp.minute, stamp.second)
            timestamp.dhh = timestamp.dmm = 0

    document.build(story, onFirstPage=date_it)


def write_statement_pdf(period: BillingPeriod, team_id: int, out: IO[bytes]) -> None:
    """One team's statement of ``period``.

    :raises NotFound: when the team has no statement (no lines) in the period.
    """
    views = statements_for(period, {team_id})
    if not views:
        raise NotFound(_("This team has no statement for %(month)s.", month=period.label))
    _build(period, views, out)


def write_period_pdf(period: BillingPeriod, out: IO[bytes]) -> int:
    """Every statement of ``period``, each starting on a new page; returns how many."""
    views = statements_for(period)
    _build(period, views, out)
    return len(views)
