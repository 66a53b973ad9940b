"""CAQH CORE envelopes without a network: both styles round-trip every field, the checksum is SHA-1
of the payload, and what a partner could send to hurt us (DTDs, wrong lengths, junk) is refused."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from gateway.transport.core_envelope import (
    ELEMENTS,
    PAYLOAD_TYPES,
    CoreMessage,
    EnvelopeError,
    build,
    build_mime,
    new_payload_id,
    parse,
    parse_mime,
    sealed,
    verify_checksum,
)

X12 = (
    b"ISA*00*          *00*          *ZZ*X12GATEWAY     *ZZ*ACMEID         *261202*1139*^*00501*"
    b"000000001*0*T*:~"
)
SECRET = "s3cret-pass"  # noqa: S105 - a test credential


def _message(**changes: object) -> CoreMessage:
    base = CoreMessage(
        payload_type=PAYLOAD_TYPES["270"],
        processing_mode="RealTime",
        payload_id=new_payload_id(),
        timestamp="2026-12-02T11:39:00Z",
        sender_id="X12GATEWAY",
        receiver_id="SIMPAYER",
        payload=X12,
    )
    return sealed(replace(base, **changes))  # type: ignore[arg-type]


@pytest.mark.parametrize("style", ["mime", "soap"])
def test_both_styles_round_trip_every_field(style: str) -> None:
    """What build writes, parse reads back unchanged: metadata, payload bytes and credentials."""
    message = _message(username="x12gw", password=SECRET)
    body, content_type = build(message, style, ELEMENTS["realtime_request"])  # type: ignore[arg-type]
    element, read = parse(body, content_type)
    assert element == (None if style == "mime" else "COREEnvelopeRealTimeRequest")
    assert read == message


def test_the_checksum_is_sha1_of_the_payload_and_is_verified() -> None:
    """Checksum = SHA-1 hex of the payload; a changed payload or checksum is an EnvelopeError."""
    message = _message()
    assert message.checksum == hashlib.sha1(X12).hexdigest()  # noqa: S324 - the rule's algorithm
    verify_checksum(message)
    with pytest.raises(EnvelopeError, match="Checksum"):
        verify_checksum(replace(message, payload=X12 + b"x"))
    with pytest.raises(EnvelopeError, match="Checksum is missing"):
        verify_checksum(replace(message, checksum=""))


def test_payload_ids_are_version_4_uuids_and_unique() -> None:
    """Every message gets its own PayloadID, a version-4 UUID."""
    ids = {new_payload_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 36 and i[14] == "4" and i[19] in "89ab" for i in ids)


def test_a_soap_body_with_a_dtd_is_refused_before_parsing() -> None:
    """No DTD (so no entity expansion, no external entity) ever reaches the XML parser."""
    evil = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    with pytest.raises(EnvelopeError, match="DTD"):
        parse(evil, "application/soap+xml")


@pytest.mark.parametrize(
    ("body", "content_type", "problem"),
    [
        (b"<not-xml", "application/soap+xml", "well-formed"),
        (b"<a/>", "application/soap+xml", "SOAP 1.2 Envelope"),
        (b"hello", "text/plain", "Content-Type"),
        (b"--b\r\n\r\nx\r\n--b--\r\n", "multipart/form-data; boundary=b", "form-data name"),
    ],
)
def test_junk_is_an_envelope_error_naming_the_problem(body: bytes, content_type: str, problem: str) -> None:
    """Whatever the partner sends, reading it raises EnvelopeError (never another exception)."""
    with pytest.raises(EnvelopeError, match=problem):
        parse(body, content_type)


def test_a_payload_length_that_does_not_match_is_refused() -> None:
    """PayloadLength (MIME) must equal the payload's size."""
    body, content_type = build_mime(_message())
    body = body.replace(f"\r\n{len(X12)}\r\n".encode(), b"\r\n7\r\n")
    with pytest.raises(EnvelopeError, match="PayloadLength"):
        parse_mime(body, content_type)


def test_an_error_envelope_needs_only_its_id_and_code() -> None:
    """A response with ErrorCode other than Success may leave the other metadata out."""
    error = CoreMessage(
        "", "", new_payload_id(), "", "", "", error_code="Receiver Busy", error_message="later"
    )
    body, content_type = build_mime(error)
    read = parse_mime(body, content_type)
    assert (read.ok, read.error_code, read.error_message) == (False, "Receiver Busy", "later")


def test_the_repr_never_shows_the_payload_or_the_password() -> None:
    """Logs and tracebacks cannot leak PHI or the CORE password through a message object."""
    shown = repr(_message(username="x12gw", password=SECRET))
    assert SECRET not in shown
    assert "ISA" not in shown


def test_soap_writes_the_schemas_checksum_element_and_reads_either_case() -> None:
    """SOAP carries the checksum as the CORE schema's <CheckSum> element; field names and known
    PayloadType strings are read whatever their case (a partner's ``005010x231A1``)."""
    message = _message()
    body, content_type = build(message, "soap", ELEMENTS["realtime_request"])
    assert b"<CheckSum>" in body
    assert b"<Checksum>" not in body
    odd = body.replace(b"CheckSum>", b"CHECKSUM>").replace(
        PAYLOAD_TYPES["270"].encode(), PAYLOAD_TYPES["270"].lower().encode()
    )
    _, read = parse(odd, content_type)
    assert read == message
    verify_checksum(read)


def test_an_unknown_payload_type_is_kept_as_sent() -> None:
    """Only PayloadTypes we know are respelt; anything else reaches the caller unchanged."""
    message = _message(payload_type="X12_276_Request_005010X212")
    body, content_type = build_mime(message)
    assert parse(body, content_type)[1].payload_type == "X12_276_Request_005010X212"
