"""The documented JSON form of inbox requests: one object, a list, or ``{"requests": [...]}``.

Each object carries ``"type": "270"`` or ``"278"`` plus the fields of :class:`EligibilityInquiry` or
:class:`ServiceReviewRequest`. Errors name the request index and field path, never the value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
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

    The usual document (a list of requests, bare or as ``{"requests": [...]}``) is read request by
    request (:func:`_parse_streamed`): each parsed object becomes its model at once and goes, instead of
    the whole document's objects being held, and walked by the collector, until the last is converted.
    Anything else, or any document that reader meets a problem in, is read by the reference
    :func:`parse_request_document_whole`, which gives the answer or raises the error.
    """
    streamed = _parse_streamed(text, limit)
    return streamed if streamed is not None else parse_request_document_whole(text, limit)


def parse_request_document_whole(text: str | bytes, limit: int | None = None) -> list[Request | RequestError]:
    """The reference reading of :func:`parse_request_document`: the whole document parsed, then each
    request converted."""
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


# json's own scanner (the default decoder's: same numbers, constants and strictness as json.loads),
# called once per request, and json's own whitespace
_Scan = Callable[[str, int], tuple[Any, int]]
_SCAN: _Scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # set in its __init__
_SPACE = re.compile(r"[ \t\n\r]*")
_WRAPPED = re.compile(r'\{[ \t\n\r]*"requests"[ \t\n\r]*:[ \t\n\r]*\[')


def _parse_streamed(text: str | bytes, limit: int | None) -> list[Request | RequestError] | None:
    """:func:`parse_request_document` of a document that is a list of requests, bare (``[...]``) or
    the only member of ``{"requests": [...]}``, read one request at a time; None for any other
    document and for any problem met (invalid JSON, too many requests, an error other than a request's
    own), the reference reading then giving the answer or the error, as if this one had not run."""
    try:
        if not isinstance(text, str):
            text = text.decode(json.detect_encoding(text), "surrogatepass")  # as json.loads decodes
        return _streamed_items(text, limit)
    except Exception:  # noqa: BLE001 - the reference reading raises whatever it raises, here or not
        return None


def _skip(text: str, at: int) -> int:
    """The position after any JSON whitespace from ``at``."""
    gap = _SPACE.match(text, at)
    return gap.end() if gap is not None else at


def _streamed_items(text: str, limit: int | None) -> list[Request | RequestError] | None:
    """The requests of a list document, converted as each is parsed; None where the document is not
    such a list of valid JSON, or holds more than ``limit`` requests."""
    at = _skip(text, 0)
    wrapped = _WRAPPED.match(text, at)
    if wrapped is not None:
        at = wrapped.end()
    elif text.startswith("[", at):
        at += 1
    else:
        return None
    out: list[Request | RequestError] = []
    at = _skip(text, at)
    if text.startswith("]", at):
        at += 1
    else:
        while True:
            if limit is not None and len(out) >= limit:
                return None
            item, at = _SCAN(text, at)  # StopIteration or JSONDecodeError where no valid value starts
            try:
                out.append(request_from_obj(item, f"requests[{len(out)}]"))
            except RequestError as exc:
                out.append(exc)
            at = _skip(text, at)
            if text.startswith("]", at):
                at += 1
                break
            if not text.startswith(",", at):
                return None
            at = _skip(text, at + 1)
    if wrapped is not None:
        at = _skip(text, at)
        if not text.startswith("}", at):
            return None
        at += 1
    return out if _skip(text, at) == len(text) else None
