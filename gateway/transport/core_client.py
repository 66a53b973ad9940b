"""The HTTPS side of CAQH CORE connectivity: one POST of one envelope, the answer read and checked.

TLS is verified against the partner's pinned CA (or its own certificate) only, never the system's
trust store; client authentication is either a username/password in the envelope (``basic``) or an
X.509 client certificate (``mtls``). Every failure becomes a ``TransferError`` saying whether trying
again later may help (``retryable``) and, where the partner answered with a CORE error, its code. The
password never appears in a message, a log line or a repr. Connections are kept alive per endpoint
and shared by the threads of a process (``LINKS``): a TLS handshake per call costs more than the
gateway's own work on it.
"""

from __future__ import annotations

import email.parser
import http.client
import re
import select
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from gateway.errors import TransferError
from gateway.transport.core_envelope import (
    CoreMessage,
    EnvelopeError,
    EnvelopeStyle,
    build,
    parse,
    verify_checksum,
)

AuthKind = Literal["basic", "mtls"]
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# CORE error codes after which the same message may succeed later; every other code is final.
RETRYABLE_CODES = frozenset({"receiverbusy", "serverbusy", "servicebusy", "timeout", "internalerror"})
# Codes that mean the payload (or its metadata) was refused: the request is rejected, not retried.
PAYLOAD_REJECTED_HINTS = ("illegal", "required", "checksummismatch", "payloadrejected", "notsupported")


@dataclass(frozen=True)
class CoreEndpoint:
    """Where and how to reach one partner's CORE service (secrets resolved by the config)."""

    url: str
    style: EnvelopeStyle
    partner: str
    ca_file: Path
    auth: AuthKind = "basic"
    username: str | None = None
    password: str | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    timeout: float = 60.0

    def __repr__(self) -> str:
        shown = f"url={self.url!r}, style={self.style!r}, partner={self.partner!r}, auth={self.auth!r}"
        return f"CoreEndpoint({shown})"  # never the password


@dataclass(frozen=True)
class CoreReply:
    """What came back: the HTTP status, the envelope read from the body, and how long it took."""

    status: int
    message: CoreMessage
    elapsed_ms: int
    connect_ms: int
    raw: bytes
    content_type: str


class CoreError(TransferError):
    """A CORE exchange failed; ``code`` is the partner's ErrorCode (or an HTTP/TLS/envelope reason),
    ``rejects_payload`` says the partner refused the payload itself (the request is rejected)."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        partner: str,
        code: str,
        status: int | None = None,
        rejects_payload: bool = False,
        elapsed_ms: int | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable, partner=partner, operation="core post")
        self.code = code
        self.status = status
        self.rejects_payload = rejects_payload
        self.elapsed_ms = elapsed_ms


def tls_context(endpoint: CoreEndpoint) -> ssl.SSLContext:
    """TLS 1.2+, the pinned CA/certificate only, host name checked, client certificate for mTLS."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=str(endpoint.ca_file))
    if endpoint.auth == "mtls" and endpoint.client_cert is not None:
        ctx.load_cert_chain(
            str(endpoint.client_cert), str(endpoint.client_key) if endpoint.client_key else None
        )
    return ctx


def _file_key(path: Path | None) -> tuple[str, int, int] | None:
    """A file's identity for the caches: a replaced CA or certificate gets fresh contexts and links."""
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return (str(path), -1, -1)  # unreadable: tls_context reports it
    return (str(path), st.st_mtime_ns, st.st_size)


PoolKey = tuple[object, ...]


def _plain_headers(lines: list[bytes]) -> http.client.HTTPMessage | None:
    """The header block ``lines`` (each ending in CRLF, the blank line last) as the e-mail parser
    reads it (compat32: the name as sent, the value without the blanks after the colon and without
    the line end), or None when a line is not a plain ``Name: value`` (folded, a bare LF, no name,
    a byte outside visible ASCII in the name, a value holding what ``str.splitlines`` breaks at): those
    go to the e-mail parser."""
    msg = http.client.HTTPMessage()
    for line in lines[:-1]:
        name, colon, value = line.partition(b":")
        if (
            not colon
            or not _TOKEN.fullmatch(name)
            or not line.endswith(b"\r\n")
            or _BREAK.search(value, 0, len(value) - 2)
        ):
            return None
        msg[name.decode("ascii")] = value[:-2].lstrip(b" \t").decode("iso-8859-1")
    return msg


_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
_BREAK = re.compile(
    rb"[\r\n\x0b\x0c\x1c-\x1e\x85]"
)  # what the e-mail parser splits lines at (str.splitlines)


class _LeanResponse(http.client.HTTPResponse):
    """``HTTPResponse`` whose headers are read without the e-mail parser when they are plain (as a
    CORE server sends them): that parser cost a real-time call more than the rest of its answer's
    HTTP. Everything else is the standard ``begin`` (status, chunked, length, keep-alive)."""

    def begin(self) -> None:
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()
            if status != http.client.CONTINUE:
                break
            http.client._read_headers(self.fp)  # a 100 answer's headers
        self.code = self.status = status
        self.reason = reason.strip()
        if version in {"HTTP/1.0", "HTTP/0.9"}:
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        lines = http.client._read_headers(self.fp)
        msg = _plain_headers(lines) if lines and lines[-1] == b"\r\n" else None
        if msg is None:  # the reference: what http.client.parse_headers does with the same lines
            text = b"".join(lines).decode("iso-8859-1")
            msg = email.parser.Parser(_class=http.client.HTTPMessage).parsestr(text)
        self.headers = self.msg = msg
        self._framing(status)

    def _framing(self, status: int) -> None:
        """Chunked or not, the length, and whether the connection closes after (as ``begin``)."""
        tr_enc = self.headers.get("transfer-encoding")
        self.chunked = bool(tr_enc and tr_enc.lower() == "chunked")
        self.chunk_left = None
        self.will_close = self._check_close()  # type: ignore[attr-defined]
        self.length = None
        length = self.headers.get("content-length")
        if length and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            else:
                if self.length < 0:
                    self.length = None
        if status in {http.client.NO_CONTENT, http.client.NOT_MODIFIED} or 100 <= status < 200:
            self.length = 0
        if self._method == "HEAD":  # type: ignore[attr-defined]
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True


class _OneWrite(http.client.HTTPSConnection):
    """``HTTPSConnection`` that sends a request's head and a ``bytes`` body in one write (the same
    bytes on the wire): ``http.client`` writes them apart, two TLS records and two system calls per
    POST, and a real-time call's thread lets the interpreter lock go at each."""

    def post(self, path: str, body: bytes, content_type: str) -> None:
        """``request("POST", path, body=body, headers={"Content-Type": content_type})``, its two
        header lines added as they would be without ``request``'s general machinery (header names
        gathered, the length found by type, each header checked by name): the same bytes on the wire
        (``tests/test_core_http_head.py``); a Content-Type ``putheader`` would refuse goes through
        ``request`` and is refused there."""
        try:
            value = content_type.encode("latin-1")
        except UnicodeEncodeError:
            value = b"\n"  # refused below, by ``request``, as it refuses it
        if http.client._is_illegal_header_value(value):  # type: ignore[attr-defined]  # not in typeshed
            self.request("POST", path, body=body, headers={"Content-Type": content_type})
            return
        self.putrequest("POST", path)
        buffer: list[bytes] = self._buffer  # type: ignore[attr-defined]
        buffer.append(b"Content-Length: %d" % len(body))
        buffer.append(b"Content-Type: " + value)
        self.endheaders(body)

    def _send_output(self, message_body: object = None, encode_chunked: bool = False) -> None:
        if not isinstance(message_body, bytes) or encode_chunked:
            super()._send_output(message_body, encode_chunked)  # type: ignore[misc]  # not in typeshed
            return
        buffer: list[bytes] = self._buffer  # type: ignore[attr-defined]
        buffer.extend((b"", b""))
        head = b"\r\n".join(buffer)
        del buffer[:]
        self.send(head + message_body)


class _Links:
    """Kept-alive HTTPS connections per partner endpoint, shared by the threads of one process.

    A TLS handshake (with a client certificate, two) costs more than the gateway's own work on a
    real-time call, so a connection goes back to the pool after a complete answer and the next POST
    to the same endpoint takes it. A connection is used by one thread at a time (taken out while in
    use); one idle for longer than ``IDLE_SECONDS`` is closed rather than reused, as servers drop
    idle connections. The key holds the endpoint's URL and credential files (with their modification
    times), so a replaced certificate never rides on a connection made with the old one.
    """

    IDLE_SECONDS = 30.0
    MAX_IDLE = 32  # per endpoint; more concurrent calls than this open (and close) their own
    # how long the credential files' identity is trusted before they are looked at again: a stat of
    # each of three files per call let the interpreter lock go three times on a busy ``serve``
    RECHECK_SECONDS = 1.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._idle: dict[PoolKey, list[tuple[float, http.client.HTTPSConnection]]] = {}
        self._contexts: dict[PoolKey, ssl.SSLContext] = {}
        self._clock = clock
        self._keys: dict[tuple[object, ...], tuple[float, PoolKey]] = {}  # endpoint -> (seen at, key)

    def key(self, endpoint: CoreEndpoint) -> PoolKey:
        """The endpoint's URL, auth and credential files' identities (looked at again once
        ``RECHECK_SECONDS`` have passed: a replaced certificate is used from then on)."""
        files = (endpoint.ca_file, endpoint.client_cert, endpoint.client_key)
        name = (endpoint.url, endpoint.auth, *files)
        now = self._clock()
        found = self._keys.get(name)
        if found is not None and now - found[0] < self.RECHECK_SECONDS:
            return found[1]
        key = (endpoint.url, endpoint.auth, *(_file_key(f) for f in files))
        self._keys[name] = (now, key)  # one dict store: threads racing here store equal keys
        return key

    def context(self, key: PoolKey, endpoint: CoreEndpoint) -> ssl.SSLContext:
        """The endpoint's TLS context, made once per key (loading the CA and the client key is slow)."""
        with self._lock:
            found = self._contexts.get(key)
        if found is None:
            found = tls_context(endpoint)
            with self._lock:
                found = self._contexts.setdefault(key, found)
        return found

    def take(self, key: PoolKey) -> http.client.HTTPSConnection | None:
        """An idle connection for ``key`` (the most recently used), or None."""
        now = time.monotonic()
        stale: list[http.client.HTTPSConnection] = []
        found = None
        with self._lock:
            idle = self._idle.get(key, [])
            while idle and found is None:
                since, conn = idle.pop()
                if now - since <= self.IDLE_SECONDS:
                    found = conn
                else:
                    stale.append(conn)
        for conn in stale:
            conn.close()
        return found

    def give(self, key: PoolKey, conn: http.client.HTTPSConnection) -> None:
        """Put a connection whose answer was read completely back for the next call."""
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.MAX_IDLE:
                idle.append((time.monotonic(), conn))
                return
        conn.close()

    def clear(self) -> None:
        """Close every idle connection and forget the contexts (tests; a process shutting down)."""
        with self._lock:
            idle = [c for conns in self._idle.values() for _, c in conns]
            self._idle.clear()
            self._contexts.clear()
            self._keys.clear()
        for conn in idle:
            conn.close()


LINKS = _Links()


def post(
    endpoint: CoreEndpoint, message: CoreMessage, element: str, *, timeout: float | None = None
) -> CoreReply:
    """POST ``message`` (credentials added for ``basic``) and return the checked answer.

    Raises CoreError: timeouts, connection failures, 5xx and "busy" answers are retryable; TLS
    failures (an unpinned server certificate, a refused client certificate), 401/403 and envelope
    errors that refuse the payload are not."""
    if endpoint.auth == "basic":
        message = replace(message, username=endpoint.username, password=endpoint.password)
    body, content_type = build(message, endpoint.style, element)
    started = time.monotonic()
    status, raw, reply_type, connect_ms = _exchange(endpoint, body, content_type, timeout or endpoint.timeout)
    elapsed = int((time.monotonic() - started) * 1000)
    return _read_reply(endpoint, status, raw, reply_type, connect_ms, elapsed)


def _fail(endpoint: CoreEndpoint, text: str, code: str, **kw: object) -> CoreError:
    return CoreError(f"partner {endpoint.partner}: CORE {text}", partner=endpoint.partner, code=code, **kw)  # type: ignore[arg-type]


# what a kept-alive connection raises when the server closed it while it sat idle in the pool
_DROPPED = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
)


def _exchange(
    endpoint: CoreEndpoint, body: bytes, content_type: str, timeout: float
) -> tuple[int, bytes, str, int]:
    """One POST over a kept-alive connection to the endpoint when one is idle, else a new one.

    A reused connection that the server turns out to have dropped (closed while idle, noticed only
    once written to) is replaced by a new one and the same envelope sent once more: the partner
    never answered it, and a duplicate PayloadID is what a crash-resend sends anyway."""
    parts = urlsplit(endpoint.url)
    if parts.scheme != "https" or not parts.hostname:
        raise _fail(endpoint, "endpoint must be an https:// URL", "config", retryable=False)
    key = LINKS.key(endpoint)
    try:
        context = LINKS.context(key, endpoint)
    except (OSError, ssl.SSLError) as exc:
        raise _fail(
            endpoint, f"TLS set-up failed ({type(exc).__name__})", "tls_config", retryable=False
        ) from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    with _mapped_errors(endpoint, timeout):
        kept = LINKS.take(key)
        if kept is not None and _usable(kept):
            try:
                return _round_trip(key, kept, path, body, content_type, timeout, reused=True)
            except _DROPPED:
                pass  # dropped by the server while idle: a fresh connection below
        elif kept is not None:
            kept.close()
        host, port = parts.hostname, parts.port or 443
        conn = _OneWrite(host, port, timeout=timeout, context=context)
        conn.response_class = _LeanResponse
        return _round_trip(key, conn, path, body, content_type, timeout, reused=False)


def _usable(conn: http.client.HTTPSConnection) -> bool:
    """Whether an idle connection is still open: a server that closed it (or sent anything at all
    unasked) makes the socket readable, and such a connection is not written to."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _round_trip(  # noqa: PLR0917 - one request's parts
    key: PoolKey,
    conn: http.client.HTTPSConnection,
    path: str,
    body: bytes,
    content_type: str,
    timeout: float,
    *,
    reused: bool,
) -> tuple[int, bytes, str, int]:
    """Send, read the whole answer, and keep the connection when the server keeps it open too;
    a connection that fails in any way is closed, never pooled."""
    started = time.monotonic()
    kept = False
    try:
        if reused:
            assert conn.sock is not None  # noqa: S101 - _usable checked it
            conn.sock.settimeout(timeout)
        else:
            conn.connect()
        connect_ms = int((time.monotonic() - started) * 1000)
        if isinstance(conn, _OneWrite):
            conn.post(path, body, content_type)
        else:
            conn.request("POST", path, body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        raw = response.read(MAX_RESPONSE_BYTES + 1)
        kept = response.isclosed() and not response.will_close and len(raw) <= MAX_RESPONSE_BYTES
        return response.status, raw, response.getheader("Content-Type") or "", connect_ms
    finally:
        if kept:
            LINKS.give(key, conn)
        else:
            conn.close()


@contextmanager
def _mapped_errors(endpoint: CoreEndpoint, timeout: float) -> Iterator[None]:
    """Transport failures as CoreErrors saying whether a later attempt may help."""
    try:
        yield
    except ssl.SSLCertVerificationError:
        raise _fail(
            endpoint, "server certificate is not the pinned one", "tls_server_certificate", retryable=False
        ) from None
    except ssl.SSLError as exc:
        raise _fail(
            endpoint, f"TLS handshake refused ({exc.reason or 'ssl'})", "tls", retryable=False
        ) from None
    except TimeoutError:
        raise _fail(endpoint, f"no answer within {timeout:.1f} s", "timeout", retryable=True) from None
    except (OSError, http.client.HTTPException) as exc:
        if isinstance(exc, ConnectionResetError | BrokenPipeError) and _tls_alert(exc):
            raise _fail(
                endpoint, "connection closed during TLS (client certificate refused?)", "tls", retryable=False
            ) from None
        raise _fail(
            endpoint, f"connection failed ({type(exc).__name__})", "connection", retryable=True
        ) from None


def _tls_alert(exc: OSError) -> bool:
    return "alert" in str(exc).lower()


def _read_reply(  # noqa: PLR0917 - the parts of one answer
    endpoint: CoreEndpoint, status: int, raw: bytes, content_type: str, connect_ms: int, elapsed: int
) -> CoreReply:
    if len(raw) > MAX_RESPONSE_BYTES:
        raise _fail(endpoint, "answer too large", "too_large", retryable=False, status=status)
    if status in (401, 403):
        raise _fail(
            endpoint,
            f"authentication refused (HTTP {status})",
            "unauthorized",
            retryable=False,
            status=status,
        )
    try:
        _element, message = parse(raw, content_type)
    except EnvelopeError as exc:
        retry = status >= 500 or status == 200
        raise _fail(
            endpoint,
            f"HTTP {status}, {exc}",
            "malformed_envelope" if status < 500 else f"http_{status}",
            retryable=retry,
            status=status,
            elapsed_ms=elapsed,
        ) from None
    if not message.ok:
        code = message.error_code or ""
        key = code.replace(" ", "").lower()
        retry = key in RETRYABLE_CODES or status >= 500
        rejects = not retry and any(h in key for h in PAYLOAD_REJECTED_HINTS)
        if key == "unauthorized":
            rejects = False
        why = (message.error_message or "")[:200]
        raise _fail(
            endpoint,
            f"error {code} (HTTP {status}): {why}",
            code,
            retryable=retry,
            status=status,
            rejects_payload=rejects,
            elapsed_ms=elapsed,
        )
    if status >= 500:
        raise _fail(
            endpoint, f"HTTP {status}", f"http_{status}", retryable=True, status=status, elapsed_ms=elapsed
        )
    if status != 200:
        raise _fail(
            endpoint, f"HTTP {status}", f"http_{status}", retryable=False, status=status, elapsed_ms=elapsed
        )
    try:
        verify_checksum(message)
    except EnvelopeError as exc:
        raise _fail(
            endpoint, str(exc), "checksum_mismatch", retryable=True, status=status, elapsed_ms=elapsed
        ) from None
    return CoreReply(status, message, elapsed, connect_ms, raw, content_type)
