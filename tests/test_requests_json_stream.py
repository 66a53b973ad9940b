"""The streamed reading of a request document against the reference whole-document reading.

``parse_request_document`` reads a list of requests one request at a time and hands anything else (and
any document it meets a problem in) to ``parse_request_document_whole``, the reference. Documents are
written in every layout the streamed reader takes (bare list or ``{"requests": [...]}``, any JSON
whitespace, str or bytes in any encoding json accepts), with damaged requests among them, then damaged
as text (cut short, an extra member, trailing data, a BOM, a bad byte), with and without a limit: both
readings must give the same requests and errors, or raise the same error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategies import inquiries, review_requests
from tests.test_jsonform_fast import damaged
from transactions.errors import RequestError
from transactions.requests_json import parse_request_document, parse_request_document_whole, request_to_obj

SPACE = st.text(alphabet=" \t\n\r", max_size=3)
REQUEST_OBJS = st.one_of(
    inquiries().map(request_to_obj),
    review_requests().map(request_to_obj),
    damaged(inquiries()),
    damaged(review_requests()),
    st.sampled_from([{}, [], 7, None, "270", {"type": "999"}]),
)


def _item(obj: Any, indent: int | None) -> str:
    return json.dumps(obj, indent=indent)


@st.composite
def documents(draw: st.DrawFn) -> str:
    """A list document in one of the layouts a billing system may write, whitespace anywhere allowed."""
    objs = draw(st.lists(REQUEST_OBJS, max_size=4))
    indent = draw(st.sampled_from([None, 0, 2]))
    gap = draw(SPACE)
    body = "[" + gap + ("," + draw(SPACE)).join(_item(o, indent) + draw(SPACE) for o in objs) + "]"
    if draw(st.booleans()):
        body = "{" + draw(SPACE) + '"requests"' + draw(SPACE) + ":" + draw(SPACE) + body + draw(SPACE) + "}"
    return draw(SPACE) + body + draw(SPACE)


MARKS = st.sampled_from(["[", "]", "{", "}", ",", ":", '"', "NaN", "1e400", "\x00"])


def _cut(draw: st.DrawFn, text: str) -> str:
    return text[: draw(st.integers(0, len(text)))]


def _replace(draw: st.DrawFn, text: str) -> str:
    at = draw(st.integers(0, max(len(text) - 1, 0)))
    return text[:at] + draw(MARKS) + text[at + 1 :]


DAMAGE: dict[str, Callable[[st.DrawFn, str], str]] = {
    "none": lambda _draw, text: text,
    "cut": _cut,
    "replace": _replace,
    "member": lambda _draw, text: '{"other": 1, "requests": ' + text + "}",
    "trailing": lambda draw, text: text + draw(st.sampled_from(["x", "[]", ",", "}", "]", "{}"])),
    "bom": lambda _draw, text: "\ufeff" + text,
    "comma": lambda _draw, text: text.replace("}", "},", 1),
    "single": lambda draw, _text: json.dumps(draw(REQUEST_OBJS)),
}


@st.composite
def damaged_text(draw: st.DrawFn) -> str:
    """A document, possibly damaged as text: cut short, a second member, trailing data, a BOM ..."""
    text = draw(documents())
    action = draw(st.sampled_from(["none", "none", *DAMAGE]))
    return DAMAGE[action](draw, text)


def outcome(parse: Any, doc: str | bytes, limit: int | None) -> tuple[Any, ...]:
    """What reading ``doc`` gives: each request's repr or error (field, reason), or the error raised."""
    try:
        got = parse(doc, limit)
    except Exception as exc:  # noqa: BLE001 - whatever either raises, the other must raise the same
        return ("raised", type(exc).__name__, str(exc))
    return tuple(
        ("error", r.field, r.reason) if isinstance(r, RequestError) else ("request", repr(r)) for r in got
    )


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    damaged_text(),
    st.sampled_from(["str", "utf-8", "utf-8-sig", "utf-16", "utf-16-be", "utf-32-le", "bad-byte"]),
    st.one_of(st.none(), st.integers(0, 5)),
)
def test_streamed_reading_agrees_with_the_whole_document(text: str, encoding: str, limit: int | None) -> None:
    """Any document, as str or bytes, gives the same requests and errors (or the same raised error) read
    request by request as read whole."""
    doc: str | bytes = text
    if encoding == "bad-byte":
        doc = text.encode("utf-8", "surrogatepass") + b"\xff"
    elif encoding != "str":
        doc = text.encode(encoding, "surrogatepass")
    assert outcome(parse_request_document, doc, limit) == outcome(parse_request_document_whole, doc, limit)


def test_a_list_document_is_read_request_by_request() -> None:
    """The streamed reader itself answers a well-formed list document (not the fallback), and each of
    its requests is the reference's."""
    from bench.corpus import inquiry  # noqa: PLC0415 - one fixed, valid inquiry
    from transactions.requests_json import _parse_streamed  # noqa: PLC0415 - the path under test

    doc = json.dumps({"requests": [request_to_obj(inquiry(i)) for i in range(3)]}).encode()
    streamed = _parse_streamed(doc, 3)
    assert streamed is not None
    assert streamed == parse_request_document_whole(doc, 3)
    assert _parse_streamed(doc, 2) is None  # over the limit: the reference refuses the file whole
