"""The OpenAPI 3.1 document at ``/api/v1/openapi.json``, built from Python data.

Each API module describes its own operations with ``@operation`` next to the view, and
registers the schemas it answers with through ``component``. The document is assembled
from the application's URL map: paths and path parameters come from the routes
themselves, operations from the views, so a route cannot be documented under the wrong
path. A route whose view carries no ``@operation`` is left out, and a test fails on it.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from flask import Flask, Response, current_app, jsonify
from werkzeug.routing import Rule

from labbook.api import bp
from labbook.api.schema import MAX_ID, Schema
from labbook.errors import HTTP_CODES

F = TypeVar("F", bound=Callable[..., Any])

API_PREFIX = "/api/v1"
SCHEMAS: dict[str, dict[str, Any]] = {}
_RULE_ARG = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "enum": sorted(set(HTTP_CODES.values()))},
                "message": {"type": "string"},
                "fields": {
                    "type": "object",
                    "description": "422 only: messages per offending property or parameter",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
                "conflicts": {
                    "type": "array",
                    "description": "409 only: the clashing intervals",
                    "items": {"type": "object"},
                },
            },
        }
    },
}

ERROR_RESPONSES = {
    400: "The body is not valid JSON.",
    401: "No valid bearer token (missing, unknown, revoked, or its user is inactive).",
    403: "The caller's role or scope does not allow this.",
    404: "No such object.",
    409: "The request conflicts with existing data.",
    415: "The body is not sent as application/json.",
    422: "Invalid values; `fields` says which and why.",
}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def component(name: str, schema: Mapping[str, Any]) -> dict[str, str]:
    """Register a named schema and return a reference to it.

    :raises ValueError: when another, different schema already has this name.
    """
    if name in SCHEMAS and SCHEMAS[name] != schema:
        raise ValueError(f"OpenAPI schema {name!r} registered twice with different content")
    SCHEMAS[name] = dict(schema)
    return ref(name)


def page_of(item: Mapping[str, Any]) -> dict[str, Any]:
    """The schema of a paginated list answer."""
    return {
        "type": "object",
        "required": ["items", "page", "per_page", "total"],
        "properties": {
            "items": {"type": "array", "items": dict(item)},
            "page": {"type": "integer", "minimum": 1},
            "per_page": {"type": "integer", "minimum": 1},
            "total": {"type": "integer", "minimum": 0},
        },
    }


def list_of(item: Mapping[str, Any]) -> dict[str, Any]:
    """The schema of an unpaginated list answer."""
    return {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": dict(item)}},
    }


def _responses(status: int, response: Mapping[str, Any], errors: set[int],
               headers: Mapping[str, Any] | None) -> dict[str, Any]:
    success: dict[str, Any] = {
        "description": "OK" if status == 200 else "Created",
        "content": {"application/json": {"schema": dict(response)}},
    }
    if headers:
        success["headers"] = dict(headers)
    answers = {str(status): success}
    for code in sorted(errors):
        answers[str(code)] = {"$ref": f"#/components/responses/{HTTP_CODES[code]}"}
    return answers


def operation(
    summary: str,
    *,
    tags: tuple[str, ...],
    response: Mapping[str, Any],
    status: int = 200,
    query: Schema | None = None,
    body: Schema | None = None,
    errors: tuple[int, ...] = (),
    description: str = "",
    headers: Mapping[str, Any] | None = None,
) -> Callable[[F], F]:
    """Describe the view's operation. 401 is implied (every call needs a token); a body
    implies 400, 415 and 422, a query 422."""
    codes = {401, *errors}
    spec: dict[str, Any] = {"summary": summary, "tags": list(tags)}
    if description:
        spec["description"] = description
    if query is not None:
        spec["parameters"] = query.parameters()
        codes.add(422)
    if body is not None:
        spec["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": component(body.name, body.json_schema())}},
        }
        codes.update({400, 415, 422})
    spec["responses"] = _responses(status, response, codes, headers)

    def decorator(view: F) -> F:
        view._openapi = spec  # type: ignore[attr-defined]
        return view

    return decorator


def _path_and_parameters(rule: Rule) -> tuple[str, list[dict[str, Any]]]:
    """``/instruments/<int(max=...):instrument_id>`` → ``/instruments/{instrument_id}``."""
    parameters = []
    for converter, name in _RULE_ARG.findall(rule.rule):
        schema: dict[str, Any] = (
            {"type": "integer", "minimum": 1, "maximum": MAX_ID}
            if converter == "int" else {"type": "string"}
        )
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    path = _RULE_ARG.sub(lambda m: "{" + m.group(2) + "}", rule.rule)
    return path[len(API_PREFIX):], parameters


def api_rules(app: Flask) -> list[Rule]:
    """Every route of the API blueprint, sorted by path."""
    return sorted(
        (r for r in app.url_map.iter_rules() if r.endpoint.startswith("api.")),
        key=lambda r: r.rule,
    )


def _paths(app: Flask) -> dict[str, dict[str, Any]]:
    paths: dict[str, dict[str, Any]] = {}
    for rule in api_rules(app):
        spec = getattr(app.view_functions[rule.endpoint], "_openapi", None)
        if spec is None:
            continue
        path, parameters = _path_and_parameters(rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            entry = {**spec, "operationId": rule.endpoint.partition(".")[2]}
            if parameters:
                entry["parameters"] = parameters + spec.get("parameters", [])
            paths.setdefault(path, {})[method.lower()] = entry
    return paths


def build_document(app: Flask) -> dict[str, Any]:
    """The whole OpenAPI document for ``app``'s current routes."""
    responses = {
        HTTP_CODES[code]: {
            "description": text,
            "content": {"application/json": {"schema": ref("Error")}},
        }
        for code, text in ERROR_RESPONSES.items()
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "labbook API",
            "version": "1",
            "description": (
                "Booking and lab management for shared research instruments. Every call "
                "needs `Authorization: Bearer <token>` (create one on your profile page or "
                "with `flask --app labbook tokens create EMAIL`). Datetimes are ISO 8601 "
                "with an offset; money and fractions are decimal strings."
            ),
        },
        "servers": [{"url": API_PREFIX}],
        "security": [{"bearerAuth": []}],
        "paths": _paths(app),
        "components": {
            "schemas": {"Error": ERROR_SCHEMA, **SCHEMAS},
            "responses": responses,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }


@bp.get("/openapi.json")
@operation(
    "This document",
    tags=("meta",),
    response={"type": "object", "description": "An OpenAPI 3.1 document"},
)
def openapi_document() -> Response:
    return jsonify(build_document(current_app))
