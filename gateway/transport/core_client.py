"""The HTTPS side of CAQH CORE connectivity: one POST of one envelope, the answer read and checked.

TLS is verified against the partner's pinned CA (or its own certificate) only, never the system's
trust store; client authentication is either a username/password in the envelope (``basic``) or an
X.509 client certificate (``mtls``). Every failure becomes a ``TransferError`` saying whether trying
again later may help (``retryable``) and, where the partner answered with a CORE error, its code. The
password never appears in a message, a log line or a repr.
"""

from __future__ import annotations

import http.client
import ssl
import time
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


def _exchange(
    endpoint: CoreEndpoint, body: bytes, content_type: str, timeout: float
) -> tuple[int, bytes, str, int]:
    parts = urlsplit(endpoint.url)
    if parts.scheme != "https" or not parts.hostname:
        raise _fail(endpoint, "endpoint must be an https:// URL", "config", retryable=False)
    try:
        context = tls_context(endpoint)
    except (OSError, ssl.SSLError) as exc:
        raise _fail(
            endpoint, f"TLS set-up failed ({type(exc).__name__})", "tls_config", retryable=False
        ) from None
    conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=timeout, context=context)
    started = time.monotonic()
    try:
        conn.connect()
        connect_ms = int((time.monotonic() - started) * 1000)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn.request("POST", path, body=body, headers={"Content-Type": content_type, "Connection": "close"})
        response = conn.getresponse()
        raw = response.read(MAX_RESPONSE_BYTES + 1)
        return response.status, raw, response.getheader("Content-Type") or "", connect_ms
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
    finally:
        conn.close()


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
