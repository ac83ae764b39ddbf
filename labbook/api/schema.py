"""Typed parsing of API input (JSON bodies and query strings) and its JSON Schema.

A ``Schema`` names its properties once; the same objects parse requests and describe them
in the OpenAPI document, so the documented limits are the enforced ones. JSON is typed, and
parsing respects that: an integer must be a JSON integer and a boolean a JSON boolean
(``"15"`` and ``true`` are not 15). Query strings are text, so their values are converted.
Every bad property is reported at once in ``ValidationError.fields``, and the services
still check the domain rules (ranges, references, coherence) for every other caller.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from labbook.errors import ValidationError

MAX_ID = 2**31 - 1  # ids are 32-bit integers on every backend
_INT_TEXT = re.compile(r"-?[0-9]{1,19}")
_DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DATETIME_YEARS = (1900, 2999)
_DATETIME_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9:]+)?")


class Invalid(Exception):
    """One value is wrong; ``message`` (translated) says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, kw_only=True)
class Prop:
    """One property. ``default`` documents what the server uses when the property is
    absent; query strings are filled with it, bodies leave it to the service."""

    required: bool = False
    nullable: bool = False
    default: Any = None
    description: str = ""

    def parse(self, value: Any) -> Any:
        """The typed value of a non-null JSON value. :raises Invalid: when it is wrong."""
        raise NotImplementedError

    def parse_text(self, raw: str) -> Any:
        """The typed value of a query-string value. :raises Invalid: when it is wrong."""
        return self.parse(raw)

    def parse_texts(self, raws: list[str]) -> Any:
        """The typed value of a query parameter given one or more times (most may be given
        only once). :raises Invalid: when it is wrong."""
        if len(raws) > 1:
            raise Invalid(_("Give this parameter at most once."))
        return self.parse_text(raws[0])

    def type_schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        schema = self.type_schema()
        if self.nullable:
            schema["type"] = [schema["type"], "null"]
        if self.default is not None:
            schema["default"] = self.default
        if self.description:
            schema["description"] = self.description
        return schema


@dataclass(frozen=True, kw_only=True)
class String(Prop):
    min_length: int = 0
    max_length: int | None = None

    def parse(self, value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid(_("Must be text."))
        if "\x00" in value:
            raise Invalid(_("Must not contain NUL characters."))
        if self.max_length is not None and len(value) > self.max_length:
            raise Invalid(_("At most %(n)d characters.", n=self.max_length))
        if len(value.strip()) < self.min_length:
            if self.min_length == 1:
                raise Invalid(_("This field is required."))
            raise Invalid(_("At least %(n)d characters.", n=self.min_length))
        return value

    def type_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string"}
        if self.min_length:
            schema["minLength"] = self.min_length
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        return schema


@dataclass(frozen=True, kw_only=True)
class Integer(Prop):
    minimum: int | None = None
    maximum: int | None = None

    def parse(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(_("Must be a whole number."))
        low, high = self.minimum, self.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            if low is not None and high is not None:
                raise Invalid(_("Must be between %(low)d and %(high)d.", low=low, high=high))
            if low is not None:
                raise Invalid(_("Must be at least %(n)d.", n=low))
            raise Invalid(_("Must be at most %(n)d.", n=high))
        return value

    def parse_text(self, raw: str) -> int:
        if not _INT_TEXT.fullmatch(raw):
            raise Invalid(_("Must be a whole number."))
        return self.parse(int(raw))

    def type_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer"}
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        return schema


@dataclass(frozen=True, kw_only=True)
class Boolean(Prop):
    def parse(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise Invalid(_("Must be true or false."))
        return value

    def parse_text(self, raw: str) -> bool:
        words = {"true": True, "1": True, "false": False, "0": False}
        if raw.lower() not in words:
            raise Invalid(_("Must be true or false."))
        return words[raw.lower()]

    def type_schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


@dataclass(frozen=True, kw_only=True)
class Choice(Prop):
    choices: tuple[str, ...] = ()

    def parse(self, value: Any) -> str:
        if not isinstance(value, str) or value not in self.choices:
            raise Invalid(_("Must be one of: %(choices)s.", choices=", ".join(self.choices)))
        return value

    def type_schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.choices)}


@dataclass(frozen=True, kw_only=True)
class ChoiceList(Prop):
    """Several words of a fixed set: a JSON array, or in a query string the parameter
    repeated and/or a comma-separated list (``state=pending,confirmed&state=in_use``)."""

    choices: tuple[str, ...] = ()

    def parse(self, value: Any) -> list[str]:
        if (not isinstance(value, list) or not value
                or any(not isinstance(v, str) or v not in self.choices for v in value)):
            raise Invalid(_("Each must be one of: %(choices)s.", choices=", ".join(self.choices)))
        return list(dict.fromkeys(value))  # distinct, in the order given

    def parse_text(self, raw: str) -> list[str]:
        return self.parse([part.strip() for part in raw.split(",")])

    def parse_texts(self, raws: list[str]) -> list[str]:
        return self.parse_text(",".join(raws))

    def type_schema(self) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "string", "enum": list(self.choices)},
                "minItems": 1}


@dataclass(frozen=True, kw_only=True)
class IdList(Prop):
    """A list of distinct row ids (whether they exist is the service's question)."""

    min_items: int = 0
    max_items: int = 100

    def parse(self, value: Any) -> list[int]:
        if not isinstance(value, list) or any(
            isinstance(i, bool) or not isinstance(i, int) or not 1 <= i <= MAX_ID for i in value
        ):
            raise Invalid(_("Must be a list of ids."))
        if len(set(value)) != len(value):
            raise Invalid(_("Each id may appear only once."))
        if not self.min_items <= len(value) <= self.max_items:
            raise Invalid(_("Give between %(low)d and %(high)d ids.",
                            low=self.min_items, high=self.max_items))
        return value

    def type_schema(self) -> dict[str, Any]:
        return {
            "type": "array",
            "items": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
            "uniqueItems": True,
            "minItems": self.min_items,
            "maxItems": self.max_items,
        }


@dataclass(frozen=True, kw_only=True)
class Date(Prop):
    def parse(self, value: Any) -> date:
        try:
            if isinstance(value, str) and _DATE_TEXT.fullmatch(value):
                return date.fromisoformat(value)
        except ValueError:
            pass
        raise Invalid(_("Enter a date (YYYY-MM-DD)."))

    def type_schema(self) -> dict[str, Any]:
        return {"type": "string", "format": "date"}


@dataclass(frozen=True, kw_only=True)
class DateTime(Prop):
    """ISO 8601 with an offset; a naive time is refused, never guessed (SPEC section 8)."""

    def parse(self, value: Any) -> datetime:
        try:
            parsed = (datetime.fromisoformat(value)
                      if isinstance(value, str) and _DATETIME_TEXT.fullmatch(value) else None)
        except ValueError:
            parsed = None
        if parsed is None:
            raise Invalid(_("Enter a date and time in ISO 8601, e.g. 2026-03-02T09:00:00+08:00."))
        if parsed.utcoffset() is None:
            raise Invalid(_("Give the time zone offset, e.g. 2026-03-02T09:00:00+08:00."))
        if not DATETIME_YEARS[0] <= parsed.year <= DATETIME_YEARS[1]:
            # Beyond these, converting between zones can overflow Python's datetime.
            raise Invalid(_("Give a year between %(low)d and %(high)d.",
                            low=DATETIME_YEARS[0], high=DATETIME_YEARS[1]))
        return parsed

    def type_schema(self) -> dict[str, Any]:
        return {"type": "string", "format": "date-time"}


@dataclass(frozen=True, kw_only=True)
class DecimalString(Prop):
    """Money, rates and fractions travel as decimal strings (SPEC section 8), never floats."""

    places: int = 2
    minimum: Decimal | None = None

    def _pattern(self) -> str:
        return rf"-?[0-9]{{1,15}}(\.[0-9]{{1,{self.places}}})?"

    def parse(self, value: Any) -> Decimal:
        if not isinstance(value, str) or not re.fullmatch(self._pattern(), value):
            raise Invalid(_("Enter a decimal number as a string with at most %(n)d decimals, "
                            "e.g. \"12.50\".", n=self.places))
        amount = Decimal(value)
        if self.minimum is not None and amount < self.minimum:
            raise Invalid(_("Must be at least %(n)s.", n=self.minimum))
        return amount

    def type_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": f"^{self._pattern()}$"}


class Schema:
    """A named set of properties: parses a JSON object or a query string into typed values.

    Unknown properties are refused (a typo must not be silently ignored); ``read_only``
    names properties that responses carry but requests may not set.
    """

    def __init__(
        self, name: str, props: Mapping[str, Prop], read_only: tuple[str, ...] = ()
    ) -> None:
        self.name = name
        self.props = dict(props)
        self.read_only = read_only

    def partial(self, name: str) -> Schema:
        """The same properties, none required: for PATCH."""
        props = {key: replace(prop, required=False) for key, prop in self.props.items()}
        return Schema(name, props, self.read_only)

    def _unknown(self, keys: Any, errors: dict[str, list[str]], unknown: str) -> None:
        for key in keys:
            if key in self.read_only:
                errors[key] = [_("This field cannot be changed.")]
            elif key not in self.props:
                errors[key] = [unknown]

    def parse(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Typed values of the properties present in ``data``.

        :raises ValidationError: listing every unknown, missing, null or mistyped property.
        """
        errors: dict[str, list[str]] = {}
        clean: dict[str, Any] = {}
        self._unknown(data, errors, _("Unknown field."))
        for name, prop in self.props.items():
            if name not in data:
                if prop.required:
                    errors[name] = [_("This field is required.")]
            elif data[name] is None:
                if prop.nullable:
                    clean[name] = None
                else:
                    errors[name] = [_("Must not be null.")]
            else:
                try:
                    clean[name] = prop.parse(data[name])
                except Invalid as error:
                    errors[name] = [error.message]
        if errors:
            raise ValidationError(_("The request has invalid values."), errors)
        return clean

    def parse_query(self, args: MultiDict[str, str]) -> dict[str, Any]:
        """Typed query parameters; an empty value counts as absent (as an HTML form sends
        an unselected filter), absent ones take their default.

        :raises ValidationError: on unknown, repeated or malformed parameters.
        """
        errors: dict[str, list[str]] = {}
        clean: dict[str, Any] = {}
        self._unknown(args.keys(), errors, _("Unknown parameter."))
        for name, prop in self.props.items():
            values = [v for v in args.getlist(name) if v != ""]
            if values:
                try:
                    clean[name] = prop.parse_texts(values)
                except Invalid as error:
                    errors[name] = [error.message]
            elif prop.required:
                errors[name] = [_("This field is required.")]
            elif prop.default is not None:
                clean[name] = prop.default
        if errors:
            raise ValidationError(_("The request has invalid parameters."), errors)
        return clean

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema (2020-12, as OpenAPI 3.1 uses) of a request body."""
        return {
            "type": "object",
            "properties": {key: prop.json_schema() for key, prop in self.props.items()},
            "required": [key for key, prop in self.props.items() if prop.required],
            "additionalProperties": False,
        }

    def parameters(self) -> list[dict[str, Any]]:
        """The OpenAPI query parameters of this schema."""
        return [
            {"name": key, "in": "query", "required": prop.required, "schema": prop.json_schema()}
            for key, prop in self.props.items()
        ]


PAGE_PROPS: dict[str, Prop] = {
    "page": Integer(minimum=1, maximum=MAX_ID, default=1, description="1-based page number"),
    "per_page": Integer(minimum=1, maximum=200, default=50, description="items per page"),
}


def response_schema(properties: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The JSON Schema of a response object: every listed property is always present."""
    return {"type": "object", "properties": dict(properties), "required": list(properties)}
