"""The OpenAPI document: it describes exactly the routes that exist, is structurally sound
OpenAPI 3.1, and its schemas match what the API sends and accepts."""
from __future__ import annotations

import re
from typing import Any

import pytest

from labbook.api.openapi import build_document
from labbook.instruments import services
from tests import factories
from tests.api.conftest import api_routes

JSON_TYPES = {"object", "array", "string", "integer", "number", "boolean", "null"}
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture
def document(client, catalog, headers_for) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = client.get("/api/v1/openapi.json", headers=headers_for("researcher"))
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def _walk(node: Any, path: str = "#"):  # type: ignore[no-untyped-def]
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}/{index}")


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        assert isinstance(node, dict) and part in node, f"dangling $ref {ref}"
        node = node[part]
    return node


def _operations(document: dict[str, Any]):  # type: ignore[no-untyped-def]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_openapi_document_lists_exactly_the_api_routes(app, document):
    documented = {(path, method) for path, method, _ in _operations(document)}
    assert documented == api_routes(app)
    assert ("/instruments/{instrument_id}", "patch") in documented


def test_openapi_document_is_the_built_document(app, document):
    assert document == build_document(app)


def test_openapi_document_header_and_security(document):
    assert re.fullmatch(r"3\.1\.\d+", document["openapi"])
    assert document["info"]["title"] and document["info"]["version"]
    assert document["servers"] == [{"url": "/api/v1"}]
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer"}
    assert document["security"] == [{"bearerAuth": []}]


def test_openapi_every_reference_resolves(document):
    refs = [node["$ref"] for _, node in _walk(document)
            if isinstance(node, dict) and "$ref" in node]
    assert len(refs) > 10
    for ref in refs:
        _resolve(document, ref)


def test_openapi_every_schema_type_is_a_json_schema_type(document):
    for where, node in _walk(document["components"]["schemas"]):
        if isinstance(node, dict) and "type" in node and not where.endswith("/properties"):
            types = node["type"] if isinstance(node["type"], list) else [node["type"]]
            assert set(types) <= JSON_TYPES, where


def test_openapi_operations_are_complete(document):
    ids = []
    for path, method, operation in _operations(document):
        assert method in METHODS
        ids.append(operation["operationId"])
        assert operation["summary"] and operation["tags"]
        codes = set(operation["responses"])
        assert "401" in codes, (path, method)
        assert codes & {"200", "201", "204"}, (path, method)
        for code, response in operation["responses"].items():
            target = _resolve(document, response["$ref"]) if "$ref" in response else response
            assert target["description"], (path, method, code)
            if code == "204":  # No Content: nothing to describe
                assert "content" not in target, (path, method)
            else:  # JSON, or another media type (text/calendar) with its schema
                assert any("schema" in media for media in target["content"].values()), (
                    path, method, code)
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), (path, method)
        for parameter in operation.get("parameters", []):
            assert parameter["in"] in {"path", "query"} and "schema" in parameter
            assert parameter["required"] is True or parameter["in"] == "query"
    assert len(ids) == len(set(ids))


def test_openapi_write_operations_describe_their_json_body(document):
    writes = [(p, m, o) for p, m, o in _operations(document) if m in {"post", "patch", "put"}]
    assert writes
    for path, method, operation in writes:
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        body = _resolve(document, schema["$ref"])
        assert body["type"] == "object" and body["additionalProperties"] is False
        assert body["properties"], (path, method)
        assert {"400", "415", "422"} <= set(operation["responses"])


def test_openapi_instrument_input_limits_are_the_services(document):
    schemas = document["components"]["schemas"]
    create, update = schemas["InstrumentCreate"], schemas["InstrumentUpdate"]
    assert set(create["properties"]) == set(services.EDITABLE)
    assert set(create["required"]) == {"name", "asset_code", "category", "facility_id",
                                       "field_ids"}
    assert update["required"] == []
    for name, limit in services.TEXT_LIMITS.items():
        assert create["properties"][name]["maxLength"] == limit
    for name, (low, high) in services.INT_RANGES.items():
        prop = create["properties"][name]
        assert (prop["minimum"], prop["maximum"]) == (low, high)
    assert create["properties"]["slot_minutes"]["default"] == 15
    assert create["properties"]["user_weekly_quota_minutes"]["type"] == ["integer", "null"]
    assert create["properties"]["requires_approval"]["type"] == "boolean"


def test_openapi_query_parameters_of_the_catalog(document):
    operation = document["paths"]["/instruments"]["get"]
    params = {p["name"]: p["schema"] for p in operation["parameters"]}
    assert set(params) == {"q", "field", "platform", "facility", "category", "status", "page",
                           "per_page"}
    assert params["per_page"] == {"type": "integer", "minimum": 1, "maximum": 200,
                                  "default": 50, "description": "items per page"}
    assert params["status"]["enum"] == ["available", "limited", "down", "retired"]


@pytest.mark.parametrize(("path", "component"), [
    ("/api/v1/instruments", "Instrument"),
    ("/api/v1/facilities", "Facility"),
    ("/api/v1/fields", "ResearchField"),
    ("/api/v1/teams", "Team"),
])
def test_openapi_response_schemas_match_what_the_api_sends(client, document, api_token,
                                                           path, component):
    team = factories.make_team()
    factories.make_account(team)
    headers = api_token(factories.make_user_with_role("team_lead", team=team))
    items = client.get(path, headers=headers).get_json()["items"]
    assert items
    schema = document["components"]["schemas"][component]
    assert set(items[0]) == set(schema["properties"]) == set(schema["required"])
    if component == "Team":
        account = _resolve(document, schema["properties"]["accounts"]["items"]["$ref"])
        assert set(items[0]["accounts"][0]) == set(account["properties"])


def test_openapi_leaves_out_a_route_without_operation(app):
    """So the equality test above fails for a new route nobody documented."""
    from flask import Blueprint, Flask

    from labbook.api.openapi import operation

    probe_app = Flask("probe")
    probe = Blueprint("api", __name__)

    @probe.get("/things/<int:thing_id>")
    @operation("A documented thing", tags=("probe",), response={"type": "object"})
    def documented(thing_id: int) -> str:
        return ""

    @probe.get("/secret")
    def undocumented() -> str:
        return ""

    probe_app.register_blueprint(probe, url_prefix="/api/v1")
    paths = build_document(probe_app)["paths"]
    assert set(paths) == {"/things/{thing_id}"}
    assert paths["/things/{thing_id}"]["get"]["parameters"][0]["name"] == "thing_id"
    assert api_routes(probe_app) == {("/things/{thing_id}", "get"), ("/secret", "get")}
