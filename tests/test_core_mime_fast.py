"""The MIME envelope's direct split against the e-mail parser (the reference): the same message or the
same refusal for every envelope ``build_mime`` writes and for damaged and unusual ones."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.transport import core_envelope
from gateway.transport.core_envelope import (
    PAYLOAD_TYPES,
    CoreMessage,
    EnvelopeError,
    build_mime,
    parse_mime,
    parse_mime_email,
    sealed,
)

TOKEN = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20)
# payloads rich in what could confuse a split: line ends, dashes, "boundary" look-alikes, 8-bit bytes
PAYLOAD = st.lists(
    st.sampled_from([b"\r\n", b"\n", b"\r", b"--", b"--core-", b"ISA*00~", b"\x85\xff", b" ", b"\r\n\r\n"])
    | st.binary(max_size=8),
    max_size=30,
).map(b"".join)


def outcome(read: object, body: bytes, content_type: str) -> tuple[str, object]:
    try:
        return "message", read(body, content_type)  # type: ignore[operator]
    except EnvelopeError as exc:
        return "refused", str(exc)


def same_reading(body: bytes, content_type: str) -> None:
    assert outcome(parse_mime, body, content_type) == outcome(parse_mime_email, body, content_type)


@st.composite
def messages(draw: st.DrawFn) -> CoreMessage:
    error = draw(st.none() | st.sampled_from(["Success", "Receiver Busy"]))
    return sealed(
        CoreMessage(
            payload_type=draw(st.sampled_from(sorted(PAYLOAD_TYPES.values())) | TOKEN),
            processing_mode=draw(st.sampled_from(["RealTime", "Batch"])),
            payload_id=draw(TOKEN),
            timestamp=draw(TOKEN),
            sender_id=draw(TOKEN),
            receiver_id=draw(TOKEN),
            payload=draw(PAYLOAD),
            username=draw(st.none() | TOKEN),
            password=draw(st.none() | TOKEN),
            error_code=error,
            error_message=draw(st.none() | TOKEN) if error else None,
        )
    )


@settings(max_examples=300, deadline=None)
@given(messages())
def test_every_built_envelope_reads_the_same_and_takes_the_direct_split(message: CoreMessage) -> None:
    """What ``build_mime`` writes is read identically by both, and the direct split is the one used."""
    body, content_type = build_mime(message)
    same_reading(body, content_type)
    assert core_envelope._plain_parts(body, content_type) is not None


@settings(max_examples=400, deadline=None)
@given(messages(), st.data())
def test_damaged_envelopes_read_the_same_or_are_refused_the_same(
    message: CoreMessage, data: st.DataObject
) -> None:
    """Bytes cut, inserted or replaced anywhere, and Content-Types respelled: the same result either way."""
    body, content_type = build_mime(message)
    at = data.draw(st.integers(0, len(body)))
    cut = data.draw(st.integers(0, 12))
    insert = data.draw(
        st.sampled_from([b"", b"\r\n", b"\n", b"--", b"\r\n\r\n", b"X-Other: 1\r\n", b" "])
        | st.binary(max_size=4)
    )
    damaged = body[:at] + insert + body[at + cut :]
    spelled = data.draw(
        st.sampled_from(
            [
                content_type,
                content_type.replace("; boundary=", ";boundary="),
                content_type.replace("boundary=", 'boundary="') + '"',
                content_type.upper(),
                "multipart/form-data",
            ]
        )
    )
    same_reading(damaged, spelled)


def test_unusual_but_valid_shapes_go_to_the_email_parser_and_read_the_same() -> None:
    """Lower-case header names, a quoted boundary, a preamble, bare LF line ends: the reference reads them."""
    body, content_type = build_mime(
        sealed(CoreMessage(PAYLOAD_TYPES["271"], "RealTime", "id-1", "t", "s", "r", b"ISA~"))
    )
    boundary = content_type.rpartition("=")[2]
    variants = [
        (body.replace(b"Content-Disposition", b"content-disposition"), content_type),
        (body, f'multipart/form-data; boundary="{boundary}"'),
        (b"preamble\r\n" + body, content_type),
        (body.replace(b"\r\n", b"\n"), content_type),
    ]
    for variant, spelled in variants:
        assert core_envelope._plain_parts(variant, spelled) is None
        same_reading(variant, spelled)
