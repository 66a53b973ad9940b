"""The CORE client's answer reader without the e-mail parser against ``http.client``'s own (the
reference): the same status, headers, framing and body for plain answers and for folded, bare-LF and
otherwise unusual header blocks."""

from __future__ import annotations

import http.client
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.transport.core_client import _LeanResponse


class _Bytes:
    """What ``HTTPResponse`` reads from: a socket whose ``makefile`` is the answer's bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, _mode: str) -> io.BufferedReader:
        return io.BufferedReader(io.BytesIO(self.data))


def read(cls: type[http.client.HTTPResponse], data: bytes) -> tuple[object, ...]:
    """What a client sees of ``data`` read by ``cls``: status, headers in order, framing, body."""
    response = cls(_Bytes(data), method="POST")  # type: ignore[arg-type]
    try:
        response.begin()
    except http.client.HTTPException as exc:
        return ("refused", type(exc).__name__)
    seen = (response.status, response.reason, response.version, response.headers.items())
    framing = (response.chunked, response.length, response.will_close)
    try:
        body = response.read()
    except http.client.HTTPException as exc:
        body = type(exc).__name__.encode()
    return (*seen, framing, body, response.isclosed())


def same(data: bytes) -> None:
    assert read(_LeanResponse, data) == read(http.client.HTTPResponse, data)


def test_a_plain_core_answer_reads_as_http_client_reads_it() -> None:
    """Status, every header (repeated ones too), Content-Length framing, keep-alive and body agree."""
    body = b'--b\r\nContent-Disposition: form-data; name="PayloadType"\r\n\r\nX\r\n--b--\r\n'
    data = (
        b"HTTP/1.1 200 OK\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nSet-Cookie: a=1\r\nSet-Cookie:  b=2 \r\n"
        b"Date: Thu, 03 Dec 2026 09:00:00 GMT\r\n\r\n" + body
    )
    same(data)
    response = _LeanResponse(_Bytes(data), method="POST")  # type: ignore[arg-type]
    response.begin()
    assert response.getheader("Content-Type") == "multipart/form-data; boundary=b"
    assert response.headers.get_all("Set-Cookie") == ["a=1", "b=2 "]
    assert (response.will_close, response.read()) == (False, body)


def test_unusual_header_blocks_read_as_http_client_reads_them() -> None:
    """A folded header, bare LF line ends, a name with a space, chunked with Connection: close, a
    100 Continue first, HTTP/1.0 without a length and a 204 all come out as the reference has them."""
    same(b"HTTP/1.1 200 OK\r\nX-Long: one\r\n two\r\nContent-Length: 2\r\n\r\nhi")
    same(b"HTTP/1.1 200 OK\nContent-Length: 2\nContent-Type: text/xml\n\nhi")
    same(b"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 2\r\n\r\nhi")
    same(b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
    same(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
    same(b"HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n\r\nuntil the end")
    same(b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n")
    same(b"HTTP/1.1 200 OK\r\nContent-Length: -3\r\nX: \xe9t\xe9\r\n\r\nhi")
    same(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n")  # the connection closed inside the headers
    for brk in (b"\r", b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e", b"\x85"):  # lines to the e-mail parser
        same(b"HTTP/1.1 200 OK\r\nX-A: a" + brk + b"b: c\r\nContent-Length: 2\r\n\r\nhi")


HEADER_PIECES = st.sampled_from(
    [
        *(b"Content-Length", b"Content-Type", b"Connection", b"Transfer-Encoding", b"X-A", b"x y"),
        *(
            b":",
            b": ",
            b" ",
            b"\t",
            b"\r\n",
            b"\n",
            b"\r",
            b"close",
            b"keep-alive",
            b"chunked",
            b"5",
            b"\xff",
        ),
        *(b"\x85", b"\x0b", b"\x1c", b"\x00", b"\x7f", b"From x"),
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(HEADER_PIECES, max_size=24).map(b"".join), st.binary(max_size=12))
def test_any_header_block_reads_as_http_client_reads_it(block: bytes, rest: bytes) -> None:
    """Whatever the header bytes, the lean reader and the reference agree (or refuse alike)."""
    same(b"HTTP/1.1 200 OK\r\n" + block + b"\r\n\r\n" + rest)
