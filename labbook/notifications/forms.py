"""Forms of labbook.notifications: the per-kind mail preferences."""

from __future__ import annotations

from typing import Any

from wtforms import BooleanField

from labbook.forms import BaseForm
from labbook.notifications.kinds import KINDS


class PreferencesForm(BaseForm):
    """One "send me mail" checkbox per kind of notification (fields added per kind by
    ``preferences_form``, named after the kind)."""

    def choices(self) -> dict[str, bool]:
        return {kind: bool(self[kind].data) for kind in KINDS}


def preferences_form(current: dict[str, bool], **kwargs: Any) -> PreferencesForm:
    """The form with every kind, checked as ``current`` says (on GET) or as submitted."""

    class _Form(PreferencesForm):
        pass

    for kind, (label, _ics) in KINDS.items():
        setattr(_Form, kind, BooleanField(label, default=current.get(kind, True)))
    return _Form(**kwargs)
