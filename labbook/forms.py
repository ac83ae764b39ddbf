"""The one form base class: CSRF on (Flask-WTF) and surrounding whitespace stripped."""
from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm


def _strip(value: Any) -> Any:
    """Trim whitespace and drop NUL characters (PostgreSQL text cannot hold them)."""
    return value.replace("\x00", "").strip() if isinstance(value, str) else value


class BaseForm(FlaskForm):
    class Meta:
        def bind_field(self, form: Any, unbound_field: Any, options: dict) -> Any:
            filters = list(unbound_field.kwargs.get("filters") or [])
            if _strip not in filters:
                filters.insert(0, _strip)
            unbound_field.kwargs["filters"] = filters
            return unbound_field.bind(form=form, **options)

    def apply_errors(self, fields: dict[str, list[str]]) -> None:
        """Attach service-level field errors so the form re-renders them in place."""
        for name, messages in fields.items():
            field = getattr(self, name, None)
            target = field.errors if field is not None else self.form_errors
            if isinstance(target, tuple):
                target = list(target)
                if field is not None:
                    field.errors = target
            target.extend(messages)
