"""The Simplified Chinese catalog is complete and consistent with the code, and pages
render in the user's language."""

from __future__ import annotations

import re
from io import BytesIO
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from labbook.extensions import db
from tests import factories
from tests.conftest import login

ROOT = Path(__file__).resolve().parent.parent
PO = ROOT / "labbook/translations/zh_Hans/LC_MESSAGES/messages.po"
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}


def _catalog():  # type: ignore[no-untyped-def]
    return read_po(BytesIO(PO.read_bytes()), locale="zh_Hans")


def _source_messages() -> set[str]:
    method_map = [("labbook/**.py", "python"), ("labbook/**/templates/**.html", "jinja2")]
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map=method_map, keywords=KEYWORDS
    ):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def test_every_source_string_is_in_the_zh_catalog():
    known = {m.id[0] if isinstance(m.id, tuple) else m.id for m in _catalog() if m.id}
    missing = sorted(_source_messages() - known)
    assert missing == [], "run `make messages` and translate: " + "; ".join(missing[:10])


def test_every_zh_entry_is_translated_with_the_same_placeholders():
    problems = []
    for message in _catalog():
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if not all(strings) or "fuzzy" in message.flags:
            problems.append(f"untranslated: {ids[0]!r}")
            continue
        wanted = set(PLACEHOLDER.findall(ids[-1]))
        for text in strings:
            if set(PLACEHOLDER.findall(text)) != wanted:
                problems.append(f"placeholders differ: {ids[0]!r} -> {text!r}")
    assert problems == []


@pytest.mark.parametrize("locale, word", [("zh_Hans", "仪器"), ("en", "Instruments")])
def test_catalog_renders_in_the_users_language(client, app, locale, word):
    user = factories.make_user(locale=locale)
    db.session.commit()
    login(client, user.email)
    html = client.get("/").get_data(as_text=True)
    assert f"<h1>{word}" in html or f">{word}<" in html
