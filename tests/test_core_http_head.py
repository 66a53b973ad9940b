"""The CORE client's POST (``core_client._OneWrite.post``) adds its two header lines itself instead of
going through ``http.client``'s ``request``: the bytes on the wire must be ``request``'s (head and
body), for every path, body and Content-Type, and a Content-Type ``request`` refuses is refused."""

from __future__ import annotations

import http.client
import socket
import ssl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.transport.core_client import _OneWrite


def _wire(conn: http.client.HTTPConnection, send: object) -> bytes:
    """What ``send()`` writes on ``conn``, read from the other end of a real socket pair."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        conn.sock = ours
        send()  # type: ignore[operator]
        ours.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := theirs.recv(65536):
            chunks.append(chunk)
    conn.sock = None
    return b"".join(chunks)


def _both(host: str, port: int, path: str, body: bytes, content_type: str) -> tuple[bytes, bytes]:
    context = ssl.create_default_context()
    reference = http.client.HTTPSConnection(host, port, context=context)
    ours = _OneWrite(host, port, context=context)
    expected = _wire(
        reference, lambda: reference.request("POST", path, body=body, headers={"Content-Type": content_type})
    )
    return _wire(ours, lambda: ours.post(path, body, content_type)), expected


@settings(max_examples=200, deadline=None)
@given(
    host=st.sampled_from(["payer.example", "127.0.0.1", "::1"]),
    port=st.sampled_from([443, 8443]),
    path=st.sampled_from(["/", "/core/realtime", "/core?x=1&y=2"]),
    body=st.binary(max_size=2000),
    boundary=st.text("abcdefABCDEF0123456789-_.", min_size=1, max_size=70),
)
def test_a_post_writes_the_bytes_request_writes(
    host: str, port: int, path: str, body: bytes, boundary: str
) -> None:
    """MIME and SOAP Content-Types, any body, host, port and path: the same head and body."""
    for content_type in (
        f"multipart/form-data; boundary={boundary}",
        'application/soap+xml; charset=UTF-8; action="RealTimeTransaction"',
    ):
        ours, expected = _both(host, port, path, body, content_type)
        assert ours == expected
        assert ours.endswith(b"\r\n\r\n" + body)


@pytest.mark.parametrize("content_type", ["multipart/form-data\r\nX-Evil: 1", "text/plain; name=\u20ac"])
def test_a_content_type_request_refuses_is_refused(content_type: str) -> None:
    """A Content-Type with a line break (or a character latin-1 cannot carry) is refused as
    ``request`` refuses it, nothing sent."""
    context = ssl.create_default_context()
    reference = http.client.HTTPSConnection("payer.example", 443, context=context)
    ours = _OneWrite("payer.example", 443, context=context)
    headers = {"Content-Type": content_type}
    with pytest.raises((ValueError, UnicodeEncodeError)) as expected:
        _wire(reference, lambda: reference.request("POST", "/", body=b"x", headers=headers))
    with pytest.raises(expected.type):
        _wire(ours, lambda: ours.post("/", b"x", content_type))
