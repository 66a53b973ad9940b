"""``core_envelope.build_soap`` writes a CORE SOAP envelope as text; the bytes must be those
ElementTree's ``tostring`` gives for the envelope's tree (``build_soap_tree``, the way it replaces),
for every message: with and without credentials and payload, errors, text to escape, any character."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.transport.core_envelope import (
    CORE_NS,
    ELEMENTS,
    PAYLOAD_TYPES,
    CoreMessage,
    build_soap,
    build_soap_tree,
    parse_soap,
    sealed,
)

_text = st.text(max_size=30) | st.sampled_from(["", "a&b", "<x>", "]]>", "\r\n\t", "é€😀", "\ud800"])
_maybe = st.none() | _text


@settings(max_examples=400, deadline=None)
@given(
    element=st.sampled_from(sorted(ELEMENTS.values())),
    fields=st.tuples(_text, _text, _text, _text, _text, _text),
    payload=st.binary(max_size=200),
    error=st.tuples(_maybe, _maybe),
    credentials=st.tuples(_maybe, _maybe),
    seal=st.booleans(),
)
def test_build_soap_writes_the_bytes_elementtree_wrote(  # noqa: PLR0917 - one message's parts
    element: str,
    fields: tuple[str, str, str, str, str, str],
    payload: bytes,
    error: tuple[str | None, str | None],
    credentials: tuple[str | None, str | None],
    seal: bool,
) -> None:
    """Any message in any body element: the same body and Content-Type as the tree way."""
    message = CoreMessage(
        *fields,
        payload,
        error_code=error[0],
        error_message=error[1],
        username=credentials[0],
        password=credentials[1],
    )
    message = sealed(message) if seal else message
    assert build_soap(message, element) == build_soap_tree(message, element)


@pytest.mark.parametrize("username", [None, "x12gw"])
def test_a_real_time_request_is_written_as_before_and_read_back(username: str | None) -> None:
    """A sealed 270 request, with and without a UsernameToken: the tree's bytes, and it reads back."""
    message = sealed(
        CoreMessage(
            PAYLOAD_TYPES["270"], "RealTime", "id-1", "2026-12-03T12:00:00Z", "X12GW", "P", b"ISA*00*&<>~"
        )
    )
    message = CoreMessage(
        **{**message.__dict__, "username": username, "password": "pw" if username else None}
    )
    element = ELEMENTS["realtime_request"]
    body, content_type = build_soap(message, element)
    assert (body, content_type) == build_soap_tree(message, element)
    name, read = parse_soap(body)
    assert (name, read.payload, read.checksum, read.username) == (
        element,
        message.payload,
        message.checksum,
        username,
    )


def test_registered_namespaces_take_the_tree_way() -> None:
    """With our namespace registered under a prefix of its own, ElementTree writes that prefix, and so
    does ``build_soap`` (it builds the tree then)."""
    message = sealed(CoreMessage(PAYLOAD_TYPES["270"], "RealTime", "id-1", "t", "s", "r", b"ISA~"))
    element = ELEMENTS["realtime_request"]
    ElementTree.register_namespace("core", CORE_NS)
    try:
        body, _ = build_soap(message, element)
        assert body == build_soap_tree(message, element)[0]
        assert b"<core:" in body
    finally:
        vars(ElementTree)["_namespace_map"].pop(CORE_NS, None)  # undo the registration
