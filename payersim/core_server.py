"""The payer side of CAQH CORE real time: an HTTPS server answering CORE envelopes (MIME or SOAP).

``CoreServer(scenario, pki=..., auth=...)`` listens on 127.0.0.1 with the simulator's server
certificate; ``auth="basic"`` checks the envelope's UserName/Password, ``auth="mtls"`` requires a
client certificate signed by the simulator's CA (the TLS handshake refuses any other). Each POST is
answered in the style it came in, from the same scenarios as the SFTP simulator
(:mod:`payersim.realtime`). ``faults`` (mutable, thread-safe counters) make it misbehave: a latency
before every answer, N answers HTTP 503, N "Receiver Busy" envelopes, N malformed envelopes, N
answers with a wrong checksum, N "PayloadRejected" errors, N connections closed after the answer
without a word (a kept-alive connection the client finds dropped). ``received`` lists every envelope
accepted (PayloadID, style, type, payload).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from gateway.runtime.logsetup import get_logger
from gateway.transport.core_envelope import (
    BATCH_RECEIPT,
    BATCH_RESULTS_ACK,
    BATCH_RESULTS_REQUEST,
    ELEMENTS,
    PAYLOAD_TYPES,
    CoreMessage,
    EnvelopeError,
    EnvelopeStyle,
    build,
    checksum,
    new_payload_id,
    parse,
    sealed,
    timestamp,
)
from payersim.certs import Pki
from payersim.realtime import Answer, NotX12Error, RealtimeResponder
from payersim.scenario import Scenario
from payersim.simulator import utc_now

log = get_logger(__name__)
REQUEST_TYPES = frozenset({PAYLOAD_TYPES["270"], PAYLOAD_TYPES["278"]})
MAX_BODY = 16 * 1024 * 1024
IDLE_SECONDS = 60.0  # a kept-alive connection idle this long is closed (its thread ends)
MAX_DELAY = 300.0  # a scenario's "hold" rule (hours) must not park a server thread for that long


@dataclass
class CoreFaults:
    """How the server misbehaves; each count is used up one answer at a time."""

    latency_seconds: float = 0.0
    http_5xx: int = 0
    busy: int = 0
    malformed: int = 0
    wrong_checksum: int = 0
    reject_payload: int = 0
    drop_connection: int = 0  # answers after which the connection is closed without saying so
    not_x12: int = 0  # well-formed answers whose payload is not an X12 interchange (quarantined by us)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take(self, name: str) -> bool:
        """Use up one of the ``name`` faults; whether there was one."""
        with self._lock:
            left = int(getattr(self, name))
            if left <= 0:
                return False
            setattr(self, name, left - 1)
            return True


@dataclass(frozen=True)
class Received:
    """One envelope the server accepted (for tests: retries, exactly once)."""

    payload_id: str
    style: str
    payload_type: str
    checksum: str
    payload: bytes = field(repr=False, default=b"")


class CoreServer:
    """The CORE real-time endpoint of the simulator (``url`` is what a partner configuration names)."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        pki: Pki,
        auth: Literal["basic", "mtls"] = "basic",
        username: str = "x12gw",
        password: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: CoreFaults | None = None,
        receiver_id: str = "SIMPAYER",
    ) -> None:
        self.responder = RealtimeResponder(scenario, utc_now)
        self.auth = auth
        self.username = username
        self.password = password
        self.faults = faults or CoreFaults()
        self.receiver_id = receiver_id
        self.received: list[Received] = []
        self.results: list[tuple[str, str, bytes]] = []
        self.handled_seconds: list[
            float
        ] = []  # the payer's own time per POST (benchmarks)  # batch mode: (PayloadID, kind, X12) to pick up
        self.connections = 0  # TLS connections accepted (tests: kept-alive connections reused)
        self._open: set[socket.socket] = set()
        self._received_lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), _handler(self))
        self._httpd.daemon_threads = True
        self._httpd.socket = _tls(pki, auth).wrap_socket(self._httpd.socket, server_side=True)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"https://{host!s}:{port}/core"

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> Self:
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, name="core-sim", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and close kept-alive connections: a stopped payer answers nothing more."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()
        with self._received_lock:
            still_open = list(self._open)
        for sock in still_open:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def note_connection(self, sock: socket.socket, *, open_: bool) -> None:
        """Count a new connection, and keep the open ones so that ``stop`` can close them."""
        with self._received_lock:
            if open_:
                self.connections += 1
                self._open.add(sock)
            else:
                self._open.discard(sock)

    def note(self, item: Received) -> None:
        with self._received_lock:
            self.received.append(item)

    # ------------------------------------------------------------------------------ answering

    def _payer_answer(self, payload: bytes) -> Answer:
        """The scenario's answer to one interchange (or, with the ``not_x12`` fault, text)."""
        answer = self.responder.answer(payload)
        if self.faults.take("not_x12"):
            return replace(answer, data=b"this answer is not an X12 interchange")
        return answer

    def answer(self, body: bytes, content_type: str) -> tuple[int, bytes, str]:  # noqa: PLR0911 - one exit per CORE outcome
        """(HTTP status, body, Content-Type) for one POST."""
        if self.faults.latency_seconds:
            time.sleep(self.faults.latency_seconds)
        if self.faults.take("http_5xx"):
            return 503, b"service unavailable", "text/plain"
        try:
            element, request = parse(body, content_type)
        except EnvelopeError as exc:
            log.info("core_sim.bad_envelope", reason=str(exc))
            style: EnvelopeStyle = "soap" if "xml" in content_type else "mime"
            return self._error(400, style, "EnvelopeIllegal", "the envelope cannot be read", None)
        style = "mime" if element is None else "soap"  # answered in the style it came in
        if self.auth == "basic" and (request.username != self.username or request.password != self.password):
            return self._error(401, style, "UnAuthorized", "username or password not accepted", request)
        if self.faults.take("busy"):
            return self._error(200, style, "Receiver Busy", "try again later", request)
        if request.processing_mode == "Batch":
            return self._batch(request, style)
        problem = self._check(request)
        if problem is not None:
            return self._error(400, style, problem[0], problem[1], request)
        if self.faults.take("reject_payload"):
            return self._error(200, style, "PayloadRejected", "the payer refused the payload", request)
        item = Received(request.payload_id, style, request.payload_type, request.checksum, request.payload)
        self.note(item)
        try:
            answer = self._payer_answer(request.payload)
        except NotX12Error as exc:
            return self._error(200, style, "PayloadRejected", str(exc), request)
        if answer.delay_seconds:
            time.sleep(min(answer.delay_seconds, MAX_DELAY))
        reply = sealed(
            CoreMessage(
                payload_type=PAYLOAD_TYPES[answer.kind],
                processing_mode="RealTime",
                payload_id=new_payload_id(),
                timestamp=timestamp(utc_now()),
                sender_id=request.receiver_id,
                receiver_id=request.sender_id,
                payload=answer.data,
                error_code="Success",
                error_message="",
            )
        )
        if self.faults.take("wrong_checksum"):
            reply = replace(reply, checksum=checksum(answer.data + b"x"))
        data, reply_type = build(replace(reply, error_message=None), style, ELEMENTS["realtime_response"])
        if self.faults.take("malformed"):
            data = data[: len(data) // 2]
        return 200, data, reply_type

    def _batch(self, request: CoreMessage, style: EnvelopeStyle) -> tuple[int, bytes, str]:
        """CORE batch mode: a submission is stored and answered later (pick-up); a retrieval hands
        out the oldest result not yet acknowledged; an acknowledgment (by PayloadID) removes it."""
        kind = request.payload_type
        if kind in REQUEST_TYPES:
            return self._submit(request, style)
        if kind in set(BATCH_RESULTS_REQUEST.values()):
            with self._received_lock:
                pending = list(self.results)
            reply = self._reply(request, kind, b"", "Batch")
            if pending:
                payload_id, answer_kind, data = pending[0]
                reply = self._reply(request, PAYLOAD_TYPES[answer_kind], data, "Batch")
                reply = replace(reply, payload_id=payload_id)
            return self._send(reply, style, ELEMENTS["batch_results_response"])
        if kind == BATCH_RESULTS_ACK:
            with self._received_lock:
                self.results = [r for r in self.results if r[0] != request.payload_id]
            return self._send(self._reply(request, kind, b"", "Batch"), style, ELEMENTS["batch_ack_response"])
        return self._error(400, style, "PayloadTypeIllegal", "not a batch payload type served here", request)

    def _submit(self, request: CoreMessage, style: EnvelopeStyle) -> tuple[int, bytes, str]:
        if request.checksum.lower() != checksum(request.payload):
            return self._error(400, style, "ChecksumMismatch", "the checksum does not match", request)
        self.note(
            Received(request.payload_id, style, request.payload_type, request.checksum, request.payload)
        )
        try:
            answers = self.responder.answer_batch(request.payload)
        except NotX12Error as exc:
            return self._error(200, style, "PayloadRejected", str(exc), request)
        with self._received_lock:
            self.results += [(new_payload_id(), a.kind, a.data) for a in answers]
        reply = self._reply(request, BATCH_RECEIPT, b"", "Batch")
        return self._send(reply, style, ELEMENTS["batch_submission_response"])

    @staticmethod
    def _reply(request: CoreMessage, payload_type: str, payload: bytes, mode: str) -> CoreMessage:
        return sealed(
            CoreMessage(
                payload_type=payload_type,
                processing_mode=mode,
                payload_id=new_payload_id(),
                timestamp=timestamp(utc_now()),
                sender_id=request.receiver_id,
                receiver_id=request.sender_id,
                payload=payload,
                error_code="Success",
            )
        )

    @staticmethod
    def _send(reply: CoreMessage, style: EnvelopeStyle, element: str) -> tuple[int, bytes, str]:
        data, content_type = build(reply, style, element)
        return 200, data, content_type

    @staticmethod
    def _check(request: CoreMessage) -> tuple[str, str] | None:
        if request.processing_mode != "RealTime":
            return "ProcessingModeIllegal", "only RealTime is served here"
        if request.payload_type not in REQUEST_TYPES:
            return "PayloadTypeIllegal", "expected a 270 or 278 request payload type"
        if request.checksum.lower() != checksum(request.payload):
            return "ChecksumMismatch", "the checksum does not match the payload"
        return None

    def _error(
        self, status: int, style: EnvelopeStyle, code: str, text: str, request: CoreMessage | None
    ) -> tuple[int, bytes, str]:
        message = CoreMessage(
            payload_type="CoreEnvelopeError",
            processing_mode="RealTime",
            payload_id=request.payload_id if request else new_payload_id(),
            timestamp=timestamp(utc_now()),
            sender_id=request.receiver_id if request else self.receiver_id,
            receiver_id=request.sender_id if request else "",
            error_code=code,
            error_message=text,
        )
        data, content_type = build(
            message, "soap" if style == "soap" else "mime", ELEMENTS["realtime_response"]
        )
        return status, data, content_type


def _tls(pki: Pki, auth: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    if auth == "mtls":
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=str(pki.ca_cert))
    return ctx


def _handler(server: CoreServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # connections kept alive, as CORE servers do
        timeout = IDLE_SECONDS
        # Headers and body go out as two writes; with Nagle on, the body waits for the client's
        # delayed ACK of the headers (~40 ms on a kept-alive connection), which would be billed to
        # the gateway in every round-trip figure.
        disable_nagle_algorithm = True

        def setup(self) -> None:
            super().setup()
            server.note_connection(self.connection, open_=True)

        def finish(self) -> None:
            server.note_connection(self.connection, open_=False)
            super().finish()

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.send_error(413)
                return
            body = self.rfile.read(length)
            started = time.perf_counter()
            status, data, content_type = server.answer(body, self.headers.get("Content-Type") or "")
            server.handled_seconds.append(time.perf_counter() - started)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            if server.faults.take("drop_connection"):
                self.close_connection = True  # kept alive as far as the client knows

        def log_message(self, format: str, *args: object) -> None:  # noqa: ARG002 - http.server API
            return  # quiet: the summary goes through structlog

    return Handler


def default_pki_folder(root: Path) -> Path:
    """Where ``x12gw sim`` keeps its CA and certificates (hidden from SFTP clients)."""
    return root / ".sim" / "pki"
