"""``core_envelope.build_mime`` writes a CORE MIME envelope as one encoded text and one copy of the
payload; the bytes must be those of the part-by-part ``bytearray`` way it replaces (kept here as the
reference), for every message: with and without payload, errors, credentials, any text."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.transport.core_envelope import PAYLOAD_TYPES, CoreMessage, _fields, build_mime, sealed

BOUNDARY = "core-0123456789abcdef0123456789abcdef"


def reference_build_mime(message: CoreMessage, boundary: str) -> tuple[bytes, str]:
    """``build_mime`` as it was (b888eb4), with the boundary given."""
    out = bytearray()
    for name, value in _fields(message):
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value.encode("utf-8") + b"\r\n"
    if message.payload:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="Payload"\r\n'.encode()
        out += b"Content-Type: application/edi-x12\r\n\r\n" + message.payload + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
_maybe = st.one_of(st.none(), _text)


@settings(max_examples=300, deadline=None)
@given(
    payload_type=st.sampled_from([*PAYLOAD_TYPES.values(), "X12_Other"]),
    mode=st.sampled_from(["RealTime", "Batch", ""]),
    payload_id=_text,
    stamp=_text,
    ids=st.tuples(_text, _text),
    payload=st.binary(max_size=300),
    error=st.tuples(_maybe, _maybe),
    credentials=st.tuples(_maybe, _maybe),
    seal=st.booleans(),
)
def test_build_mime_writes_the_bytes_the_part_by_part_way_wrote(  # noqa: PLR0917 - one message's parts
    payload_type: str,
    mode: str,
    payload_id: str,
    stamp: str,
    ids: tuple[str, str],
    payload: bytes,
    error: tuple[str | None, str | None],
    credentials: tuple[str | None, str | None],
    seal: bool,
) -> None:
    """Any message, sealed or not: the same body and Content-Type as the reference way."""
    message = CoreMessage(
        payload_type,
        mode,
        payload_id,
        stamp,
        ids[0],
        ids[1],
        payload,
        error_code=error[0],
        error_message=error[1],
        username=credentials[0],
        password=credentials[1],
    )
    message = sealed(message) if seal else message
    assert build_mime(message, BOUNDARY) == reference_build_mime(message, BOUNDARY)


def test_a_real_time_request_is_written_as_before_with_a_fresh_boundary() -> None:
    """A sealed 270 request: the same bytes as the reference with the boundary ``build_mime`` chose,
    a new boundary per envelope."""
    message = sealed(
        CoreMessage(
            PAYLOAD_TYPES["270"], "RealTime", "id-1", "2026-12-03T12:00:00Z", "X12GW", "PAYER", b"ISA*00~"
        )
    )
    body, content_type = build_mime(message)
    boundary = re.fullmatch(r"multipart/form-data; boundary=(core-[0-9a-f]{32})", content_type)
    assert boundary is not None
    assert (body, content_type) == reference_build_mime(message, boundary.group(1))
    assert build_mime(message)[1] != content_type
