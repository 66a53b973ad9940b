"""The documented JSON form of inbox requests: one object, a list, or ``{"requests": [...]}``.

Each object carries ``"type": "270"`` or ``"278"`` plus the fields of :class:`EligibilityInquiry` or
:class:`ServiceReviewRequest`. Errors name the request index and field path, never the value.
"""

from __future__ import annotations

import json
from typing import Any

from transactions.errors import RequestError
from transactions.jsonform import from_dict, to_dict
from transactions.models import EligibilityInquiry, ServiceReviewRequest
from transactions.outbound import Request, request_kind

TYPES: dict[str, type[EligibilityInquiry] | type[ServiceReviewRequest]] = {
    "270": EligibilityInquiry,
    "278": ServiceReviewRequest,
}


def request_from_obj(obj: Any, path: str = "") -> Request:
    if not isinstance(obj, dict):
        raise RequestError("expected an object", field=path or "request")
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in TYPES:
        raise RequestError('"type" must be "270" or "278"', field=f"{path}.type" if path else "type")
    return from_dict(TYPES[kind], obj, path, ignore="type")


def request_to_obj(req: Request) -> dict[str, Any]:
    data: dict[str, Any] = {"type": request_kind(req).set_id, **to_dict(req)}
    return data


def too_many_requests(count: int, limit: int) -> str:
    """The reason a file of too many requests is refused (count, or a lower bound, and the limit)."""
    return f"file holds {count} requests, more than the limit of {limit} (inbox.max_requests_per_file)"


def parse_request_document(text: str | bytes, limit: int | None = None) -> list[Request | RequestError]:
    """Every request in a JSON document; a bad request becomes its RequestError, the others survive.

    A document of more than ``limit`` requests is refused whole before any request is read: a small
    file of a million empty objects must not become a million errors.
    """
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise RequestError(f"not valid JSON{where}", field="document") from None
    if isinstance(doc, dict) and "requests" in doc:
        doc = doc["requests"]
    items = doc if isinstance(doc, list) else [doc]
    if limit is not None and len(items) > limit:
        raise RequestError(too_many_requests(len(items), limit), field="document")
    out: list[Request | RequestError] = []
    in_list = isinstance(doc, list)
    for i, item in enumerate(items):
        items[i] = None  # the parsed object goes as soon as it is read: a smaller heap for the collector
        try:
            out.append(request_from_obj(item, f"requests[{i}]" if in_list else ""))
        except RequestError as exc:
            out.append(exc)
    return out
