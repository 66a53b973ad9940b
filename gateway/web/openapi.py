"""The OpenAPI 3.1 document of the HTTP API, served at ``/api/v1/openapi.json``.

The request schemas are generated from the request models' type hints (the same hints the JSON
reader converts by), so the document cannot drift from what the API accepts; ``docs/openapi.json`` is
the checked-in copy (``python -m gateway.web.openapi > docs/openapi.json``), and a test keeps the two
equal and every route described.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import types
import typing
from datetime import date
from decimal import Decimal
from typing import Any, get_args, get_origin, get_type_hints

from gateway.web.apiauth import SCOPES
from transactions.models import EligibilityInquiry, ServiceReviewRequest

REF = "#/components/schemas/"


def _schema(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = _schema(next(a for a in get_args(tp) if a is not type(None)), defs)
        return {"oneOf": [inner, {"type": "null"}]}
    if origin is typing.Literal:
        return {"enum": list(get_args(tp))}
    if origin is tuple:
        return {"type": "array", "items": _schema(get_args(tp)[0], defs)}
    if dataclasses.is_dataclass(tp):
        name = tp.__name__  # type: ignore[union-attr]
        if name not in defs:
            defs[name] = {}  # placeholder against recursion
            defs[name] = _object(tp, defs)  # type: ignore[arg-type]
        return {"$ref": REF + name}
    simple: dict[Any, dict[str, Any]] = {
        str: {"type": "string"},
        int: {"type": "integer"},
        bool: {"type": "boolean"},
        date: {"type": "string", "format": "date"},
        Decimal: {"type": ["number", "string"]},
    }
    return simple[tp]


def _object(cls: type, defs: dict[str, Any]) -> dict[str, Any]:
    hints = get_type_hints(cls)
    fields = dataclasses.fields(cls)
    required = [
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    out: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {f.name: _schema(hints[f.name], defs) for f in fields},
    }
    if required:
        out["required"] = required
    return out


def _request_schema(cls: type, kind: str, defs: dict[str, Any]) -> dict[str, Any]:
    body = _object(cls, defs)
    body["properties"] = {"type": {"const": kind}, **body["properties"]}
    return body


_PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details; a 422 lists every problem by field path (never a value)",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
                "required": ["field", "reason"],
            },
        },
    },
    "required": ["type", "title", "status"],
}

_RESULT = {
    "type": "object",
    "description": "the outbox result file's JSON: the request's state and its latest record",
    "properties": {
        "tracking_number": {"type": "string"},
        "client_reference": {"type": ["string", "null"]},
        "kind": {"enum": ["270", "278"]},
        "state": {"type": "string"},
        "status": {"type": "string"},
        "reason": {"type": ["string", "null"]},
        "updated_at": {"type": "string", "format": "date-time"},
        "eligibility": {"type": ["object", "null"], "description": "as x12gw map --json prints it"},
        "authorization": {"type": ["object", "null"], "description": "as x12gw map --json prints it"},
        "history": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["tracking_number", "kind", "state", "status"],
}

_ACCEPTED = {
    "type": "object",
    "properties": {
        "tracking_number": {"type": "string"},
        "state": {"const": "accepted"},
        "location": {"type": "string"},
    },
    "required": ["tracking_number", "state", "location"],
}


def _problems(*codes: int) -> dict[str, Any]:
    text = {
        400: "a malformed Idempotency-Key",
        401: "no API key or client certificate, or an unknown or revoked one",
        403: "the client lacks this endpoint's scope",
        404: "not one of this client's requests",
        409: "a call with this Idempotency-Key is still in progress (Retry-After)",
        413: "the body is too large",
        415: "the body is not JSON",
        422: "the request is invalid (every problem listed), or the Idempotency-Key came with another body",
    }
    problem = {"application/problem+json": {"schema": {"$ref": REF + "Problem"}}}
    return {str(c): {"description": text[c], "content": problem} for c in codes}


def _post(summary: str, schema: str, scope: str) -> dict[str, Any]:
    result = {"application/json": {"schema": {"$ref": REF + "Result"}}}
    return {
        "post": {
            "summary": summary,
            "security": [{"bearerAuth": [scope]}, {"mutualTLS": [scope]}],
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "a retried POST with the same key and body gets the first response again",
                    "schema": {"type": "string", "maxLength": 255},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": REF + schema}}},
            },
            "responses": {
                "200": {"description": "answered in real time within the budget", "content": result},
                "202": {
                    "description": "accepted; poll the Location for the result",
                    "headers": {"Location": {"schema": {"type": "string"}}},
                    "content": {"application/json": {"schema": {"$ref": REF + "Accepted"}}},
                },
                **_problems(400, 401, 403, 409, 413, 415, 422),
            },
        }
    }


def _get(summary: str, name: str, scope: str) -> dict[str, Any]:
    result = {"application/json": {"schema": {"$ref": REF + "Result"}}}
    return {
        "get": {
            "summary": summary,
            "security": [{"bearerAuth": [scope]}, {"mutualTLS": [scope]}],
            "parameters": [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": {"description": "the stored result", "content": result},
                **_problems(401, 403, 404),
            },
        }
    }


@functools.cache
def _document() -> str:
    defs: dict[str, Any] = {}
    schemas = {
        "EligibilityRequest": _request_schema(EligibilityInquiry, "270", defs),
        "AuthorizationRequest": _request_schema(ServiceReviewRequest, "278", defs),
    }
    doc = {
        "openapi": "3.1.0",
        "info": {
            "title": "x12-gateway API for billing systems",
            "version": "1",
            "description": "Eligibility (270/271) and prior authorization (278) requests, answered in real "
            "time by CAQH CORE partners within the budget, else 202 and the result later. Scopes: "
            + ", ".join(SCOPES),
        },
        "servers": [{"url": "/api/v1"}],
        "paths": {
            "/eligibility": _post("an eligibility inquiry (270)", "EligibilityRequest", "eligibility:write"),
            "/authorizations": _post(
                "a prior authorization request (278)", "AuthorizationRequest", "authorizations:write"
            ),
            "/requests/{tracking}": _get(
                "a request's result by tracking number", "tracking", "requests:read"
            ),
            "/authorizations/{number}": _get(
                "an authorization by tracking or certification number", "number", "authorizations:read"
            ),
            "/openapi.json": {
                "get": {
                    "summary": "this document",
                    "security": [],
                    "responses": {"200": {"description": "OpenAPI 3.1"}},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "x12gw api-keys add"},
                "mutualTLS": {
                    "type": "mutualTLS",
                    "description": "a client certificate registered by subject",
                },
            },
            "schemas": {
                **schemas,
                **dict(sorted(defs.items())),
                "Result": _RESULT,
                "Accepted": _ACCEPTED,
                "Problem": _PROBLEM,
            },
        },
    }
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def document() -> dict[str, Any]:
    """The OpenAPI document (a fresh copy)."""
    doc: dict[str, Any] = json.loads(_document())
    return doc


def main() -> None:
    """Print the document (how ``docs/openapi.json`` is regenerated)."""
    sys.stdout.write(_document())


if __name__ == "__main__":
    main()
