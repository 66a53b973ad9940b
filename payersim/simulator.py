"""A clearinghouse simulator: an SFTP server that acknowledges and answers what the gateway uploads.

The gateway's tests and the demo run against it. ``ClearinghouseSimulator(root, scenario, ...)``
serves ``root`` over SFTP (:class:`payersim.sftp_server.SftpServer`) with two folders:

* ``/inbound``: the gateway uploads 270/278 interchanges here (under a hidden ``.NAME.part`` name,
  then renamed). A responder thread polls it; hidden names and ``*.part`` are ignored. Each complete
  file is validated, answered, and moved to ``/inbound/processed/``.
* ``/outbound``: the simulator's files for the gateway to download, each written under a hidden
  temporary name and renamed, so a listing never shows half a file. Names are
  ``<KIND>-<ISA13>.x12``: ``TA1-...``, ``999-...``, ``271-...``, ``278-...`` (or ``271-278-...``).

What happens to one input interchange:

1. Validation (``transactions.validation``). A broken envelope, a duplicate ISA13 (when
   ``reject_duplicates``) or a scenario rule ``ack = "ta1_reject"`` on any of its sets: a TA1 R and
   nothing else. ISA14 = 1 on a good interchange: a TA1 A, then the rest.
2. One 999 per functional group with the real verdicts, except that sets whose rule says
   ``ack = "reject"`` are turned into rejections (IK3 on the subscriber NM1, IK4 NM109/67 code 7). A file
   holding only acknowledgments (999/TA1 from the gateway) is not acknowledged back.
3. For each accepted 270 a 271, for each accepted 278 request a 278 response, as the scenario says,
   no earlier than ``delay_seconds`` after the file was seen. Responses due together (same input
   interchange, same moment) share one interchange. ``pend_then_approve`` sends an A4 (BHT06 19,
   PWK, REF*NT reference) at ``delay_seconds`` and an A1 (same BHT03 and TRN*2 echo, a new payer
   TRN*1, the same REF*NT) ``approve_after_seconds`` later.

The simulator answers as the receiver the request addressed (ISA07/08, GS03) to its sender, with the
request's delimiters and usage indicator. Its control numbers, certification numbers
(``SIM000001`` ...), payer traces (``SIMTRN000001`` ...) and references (``SIMREF000001`` ...) come
from counters in ``root/.sim/state.json``, which also remembers received ISA13s; ``root/.sim`` is
hidden from SFTP clients. Responses still waiting when the simulator stops are dropped.

Scenario file (TOML; every key optional; unknown keys are refused)::

    [defaults]
    eligibility = "active"      # active | inactive | not_found (AAA 2100C 75) |
                                # reject_provider (AAA 2100B 51) | unable_to_respond (AAA 2000A 42)
    review = "approve"          # approve (A1) | partial (A2: first line half, at least 1; the rest A1) |
                                # pend (A4) | pend_then_approve (A4, later A1) | deny (A3) |
                                # modify (A6: first half of the dates) | cancel (C) | contact_payer (CT) |
                                # no_action (NA) | reject_subscriber (AAA 2010C 75)
    ack = "accept"              # accept | reject (999 rejects the set, no answer) |
                                # ta1_reject (TA1 R 024 for the whole interchange, no 999, no answer)
    delay_seconds = 0.0         # answer no earlier than this after the request was seen
    approve_after_seconds = 2.0 # pend_then_approve: A1 this long after the A4
    auth_required_codes = ["70551-70553", "72141-72158", "78811-78816"]
    reject_duplicates = true    # TA1 R 025 for an ISA13 received before

    [[rules]]                   # checked in order; the FIRST rule whose keys all match wins, and
    member_id = "ZZM100000002"  # the outcome keys it sets replace the defaults (others stay).
    kind = "270"                # match keys: member_id (subscriber NM109), procedure (a code or
    eligibility = "inactive"    # range "E0100-E8002"; any 278 line or the 270 EQ02 procedure),
                                # kind ("270" | "278"), certification_type (278 UM02, e.g. "3")

A 271 says EB11 = Y for auth_required codes: for an inquiry by procedure (EB13 = that code, or N
when it needs none), and for imaging service types 4 and 62 (one EB per code, EB13).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import os
import posixpath
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

import paramiko
from paramiko.sftp import SFTP_PERMISSION_DENIED

from gateway.errors import ConfigError
from gateway.runtime.logsetup import get_logger
from gateway.transport.sftp import SftpEndpoint, safe_display
from payersim.build_responses import (
    EligibilityResponse,
    Response,
    ReviewResponse,
    build_response_interchange,
)
from payersim.scenario import (
    Eligibility,
    Outcome,
    Review,
    Scenario,
    certifies,
    eligibility_answer,
    review_decision,
)
from payersim.sftp_server import RootedSftpInterface, SftpFaults, SftpServer
from transactions import envelope_reader as envelope
from transactions.acks import AckEnvelope, build_999, build_ta1
from transactions.build270 import read_270
from transactions.build278 import read_278_request
from transactions.envelope_writer import MAX_CONTROL_NUMBER, InterchangeHeader
from transactions.errors import X12GatewayError
from transactions.findings import (
    ELEMENT_CODES,
    TA1_CODES,
    Finding,
    GroupReport,
    InterchangeReport,
    SetReport,
    Ta1Verdict,
)
from transactions.models import EligibilityInquiry, ServiceReviewRequest
from transactions.reader import NO_REPETITION, detect_delimiters
from transactions.segment import Delimiters, Segment
from transactions.validation import ID_QUALIFIERS, Options, validate_detailed

INBOUND = "inbound"
OUTBOUND = "outbound"
PROCESSED = "processed"
STATE_DIR = ".sim"
REMOTE_INBOUND = f"/{INBOUND}"
REMOTE_OUTBOUND = f"/{OUTBOUND}"
FORCED_TA1_NOTE = "024"  # invalid interchange content
MAX_REMEMBERED = 5000  # received ISA13s kept for duplicate detection
# Reading a request out of a set the validator accepted should not fail; if it does, skip the set.
_UNREADABLE = (X12GatewayError, ValueError, ArithmeticError, LookupError, StopIteration)

log = get_logger(__name__)

Request = EligibilityInquiry | ServiceReviewRequest


def utc_now() -> datetime:
    return datetime.now(UTC)


# ------------------------------------------------------------------------------------ sftp side


def _hidden(path: str) -> bool:
    normal = posixpath.normpath("/" + path.lstrip("/"))  # normpath keeps a leading "//"
    return normal == f"/{STATE_DIR}" or normal.startswith(f"/{STATE_DIR}/")


class _SimSftpInterface(RootedSftpInterface):
    """The rooted interface, minus ``root/.sim`` (state and host key are not the client's business)."""

    def run(self, op: str, path: str, action: Callable[[Path, str], Any], *, dest: str = "") -> Any:
        if _hidden(path) or (dest and _hidden(dest)):
            return SFTP_PERMISSION_DENIED
        return super().run(op, path, action, dest=dest)

    def list_folder(self, path: str) -> list[paramiko.SFTPAttributes] | int:
        """Like the base listing, but skips entries that vanish while listing (the simulator renames
        its temporary files all the time) instead of failing the whole listing."""

        def do(real: Path, vpath: str) -> list[paramiko.SFTPAttributes]:
            out = []
            with os.scandir(real) as entries:
                for entry in entries:
                    if _hidden(posixpath.join(vpath, entry.name)):
                        continue
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    out.append(paramiko.SFTPAttributes.from_stat(info, entry.name))
            return out

        result: list[paramiko.SFTPAttributes] | int = self.run("list", path, do)
        return result


class _SimSftpServer(SftpServer):
    interface_class = _SimSftpInterface


# ----------------------------------------------------------------------------------------- state


class _State:
    """Counters and remembered ISA13s in ``root/.sim/state.json``, written atomically on save."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.counters: dict[str, int] = {}
        self.seen: list[str] = []
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            raise ConfigError(f"simulator state {path} cannot be read ({exc.__class__.__name__})") from None
        counters, seen = doc.get("counters", {}), doc.get("seen", [])
        if not isinstance(counters, dict) or not isinstance(seen, list):
            raise ConfigError(f"simulator state {path} is not in the expected form")
        self.counters = {str(k): int(v) for k, v in counters.items()}
        self.seen = [str(s) for s in seen]

    def take(self, name: str, count: int = 1) -> int:
        """The first of ``count`` consecutive numbers (1..999999999, wrapping round)."""
        first = self.counters.get(name, 0) + 1
        if first + count - 1 > MAX_CONTROL_NUMBER:
            first = 1
        self.counters[name] = first + count - 1
        return first

    def remember(self, control_number: str) -> None:
        self.seen.append(control_number)
        del self.seen[:-MAX_REMEMBERED]

    def save(self) -> None:
        temp = self.path.with_name(f".{self.path.name}.tmp")
        temp.write_text(json.dumps({"counters": self.counters, "seen": self.seen}), encoding="utf-8")
        temp.replace(self.path)


# ----------------------------------------------------------------------------------------- plans


@dataclass(frozen=True, slots=True)
class _Address:
    """Who answers whom: the request's receiver (ISA07/08, GS03) becomes our sender, and so on."""

    our_qualifier: str
    our_id: str
    their_qualifier: str
    their_id: str
    app_sender: str
    app_receiver: str
    usage: str
    delimiters: Delimiters


@dataclass(frozen=True, slots=True)
class _Planned:
    """One response to build later: the request, the outcome step and the shared REF*NT."""

    request: Request
    step: str
    reference: str | None = None


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    address: _Address = field(compare=False)
    planned: list[_Planned] = field(compare=False)


def _group_ack(group_codes: Sequence[str], sets: Sequence[SetReport]) -> str:
    """AK901 from the set verdicts (the validator's rule, recomputed after forced rejections)."""
    if group_codes or not sets:
        return "R"
    if all(s.ack_code == "A" for s in sets):
        return "A"
    if all(s.accepted for s in sets):
        return "E"
    return "P" if any(s.accepted for s in sets) else "R"


def _forced_finding(segments: Sequence[Segment], set_id: str) -> Finding:
    """The error a forced 999 rejection reports: the subscriber's NM109 (member id) is not valid."""
    position = next((i for i, s in enumerate(segments, 1) if s.tag == "NM1" and s.get(1) == "IL"), 1)
    loop = "2100C" if set_id == "270" else "2010C"
    return Finding("NM1", position, loop, "7", ELEMENT_CODES["7"], "NM109", (9, None, None), "67")


def _body(segments: Sequence[Segment]) -> Sequence[Segment]:
    return segments[1:-1] if segments and segments[-1].tag == "SE" else segments[1:]


def _read_request(report: SetReport, segments: Sequence[Segment] | None) -> Request | None:
    """The 270 inquiry or 278 request (BHT02 13) a set carries; None for anything else."""
    if segments is None:
        return None
    body = _body(segments)
    try:
        if report.set_id == "270":
            return read_270(body)
        if report.set_id == "278" and body and body[0].tag == "BHT" and body[0].get(2) == "13":
            return read_278_request(body)
    except _UNREADABLE:
        return None
    return None


def _delimiters(data: bytes) -> Delimiters:
    try:
        d = detect_delimiters(data)
    except X12GatewayError:
        return Delimiters()
    return Delimiters() if d.repetition == NO_REPETITION else d


def _first_gs(data: bytes) -> dict[int, Segment]:
    """The first GS of each interchange, by the interchange's offset (for GS02/GS03)."""
    out: dict[int, Segment] = {}
    current: int | None = None
    with contextlib.suppress(X12GatewayError):
        for event in envelope.iter_envelope(data):
            if isinstance(event, envelope.InterchangeStart):
                current = event.offset
            elif isinstance(event, envelope.GroupStart) and current is not None:
                out.setdefault(current, event.gs)
    return out


def _address(ic: InterchangeReport, gs: Segment | None, delimiters: Delimiters) -> _Address:
    our_qualifier = ic.receiver_qualifier if ic.receiver_qualifier in ID_QUALIFIERS else "ZZ"
    their_qualifier = ic.sender_qualifier if ic.sender_qualifier in ID_QUALIFIERS else "ZZ"
    our_id, their_id = ic.receiver or "CLEARINGHOUSE", ic.sender or "UNKNOWN"
    app_sender = (gs.get(3) if gs is not None else "") or our_id
    app_receiver = (gs.get(2) if gs is not None else "") or their_id
    usage = ic.usage if ic.usage in ("P", "T") else "T"
    return _Address(
        our_qualifier, our_id, their_qualifier, their_id, app_sender, app_receiver, usage, delimiters
    )


# ------------------------------------------------------------------------------------- simulator


class ClearinghouseSimulator:
    """Serve ``root`` over SFTP and answer what arrives in ``inbound/`` (see the module docstring).

    ``host_key`` is the server's private key (pin ``host_key_line``); clients log in as ``username``
    with one of ``authorized_keys`` and/or ``password``. ``faults`` (see
    :class:`payersim.sftp_server.SftpFaults`) lets tests make the SFTP side misbehave. ``clock``
    gives the timestamps written into the responses (ISA09/10, GS04/05, BHT04/05, issue dates);
    delays are measured on the monotonic clock. Use as a context manager, or call ``start()`` and ``stop()``.
    """

    def __init__(
        self,
        root: Path,
        scenario: Scenario,
        *,
        host_key: paramiko.PKey,
        authorized_keys: Iterable[paramiko.PKey | str] = (),
        password: str | None = None,
        username: str = "x12gw",
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], datetime] = utc_now,
        poll_interval: float = 0.1,
        faults: SftpFaults | None = None,
    ) -> None:
        self.root = root.resolve()
        if not self.root.is_dir():
            raise ConfigError(f"simulator root {root} is not a directory")
        self.scenario = scenario
        self.inbound = self.root / INBOUND
        self.outbound = self.root / OUTBOUND
        self.processed = self.inbound / PROCESSED
        state_dir = self.root / STATE_DIR
        for folder in (self.inbound, self.outbound, self.processed):
            folder.mkdir(exist_ok=True)
        state_dir.mkdir(mode=0o700, exist_ok=True)
        self._state = _State(state_dir / "state.json")
        self._server = _SimSftpServer(
            self.root,
            host_key,
            username=username,
            authorized_keys=authorized_keys,
            password=password,
            host=host,
            port=port,
            faults=faults,
        )
        self._clock = clock
        self._poll = poll_interval
        self._jobs: list[_Job] = []
        self._stuck: set[str] = set()
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def host(self) -> str:
        return self._server.host

    @property
    def host_key_line(self) -> str:
        return self._server.host_key_line

    @property
    def pending_responses(self) -> int:
        """Responses scheduled but not yet written."""
        with self._lock:
            return sum(len(j.planned) for j in self._jobs)

    def endpoint(self, **kwargs: Any) -> SftpEndpoint:
        """An SftpEndpoint for this simulator with its host key pinned (see ``SftpServer.endpoint``)."""
        return self._server.endpoint(**kwargs)

    def start(self) -> Self:
        if self._thread is not None:
            return self
        self._server.start()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=f"sim-responder-{self.port}", daemon=True)
        self._thread.start()
        log.info("sim.started", port=self.port, rules=len(self.scenario.rules))
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._server.stop()
        dropped = self.pending_responses
        if dropped:
            log.info("sim.stopped", dropped_responses=dropped)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.poll_once()
            self._stopping.wait(self._poll)

    def poll_once(self) -> None:
        """Process every complete file in ``inbound/`` and write every response that is due."""
        with self._lock:
            for path in self._incoming():
                self._process_file(path)
            self._send_due()

    # ----------------------------------------------------------------- input

    def _incoming(self) -> list[Path]:
        found = []
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.inbound):
                name = entry.name
                if name.startswith(".") or name.endswith(".part") or name in self._stuck:
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue
                found.append((entry.stat().st_mtime_ns, name))
        return [self.inbound / name for _, name in sorted(found)]

    def _process_file(self, path: Path) -> None:
        name = safe_display(path.name)
        try:
            data = path.read_bytes()
        except OSError as exc:
            log.warning("sim.unreadable", file=name, error=exc.__class__.__name__)
            return
        summary: dict[str, Any] = {"sets": 0, "accepted": 0, "rejected": 0, "scheduled": 0, "acks": []}
        try:
            self._answer_file(data, summary)
        except (X12GatewayError, OSError) as exc:
            log.error("sim.failed", file=name, error=exc.__class__.__name__, reason=str(exc)[:200])
        except Exception as exc:  # noqa: BLE001 - a bug must not stop the responder or loop on one file
            log.error("sim.crashed", file=name, error=exc.__class__.__name__)  # no message: it may quote data
        self._move_processed(path)
        self._state.save()
        log.info("sim.processed", file=name, **summary)

    def _answer_file(self, data: bytes, summary: dict[str, Any]) -> None:
        seen = frozenset(self._state.seen) if self.scenario.reject_duplicates else frozenset()
        validation = validate_detailed(data, Options(seen_interchanges=seen))
        if validation.report.fatal is not None:
            summary["not_x12"] = True
            return
        segments = {id(v.report): v.segments for v in validation.sets}
        first_gs = _first_gs(data)
        delimiters = _delimiters(data)
        summary["interchanges"] = len(validation.report.interchanges)
        seen_at = time.monotonic()
        for ic in validation.report.interchanges:
            address = _address(ic, first_gs.get(ic.offset), delimiters)
            self._answer_interchange(ic, segments, address, seen_at, summary)

    def _answer_interchange(
        self,
        ic: InterchangeReport,
        segments: Mapping[int, tuple[Segment, ...]],
        address: _Address,
        seen_at: float,
        summary: dict[str, Any],
    ) -> None:
        business = [g for g in ic.groups if g.functional_id != "FA"]
        summary["sets"] += sum(len(g.sets) for g in business)
        if ic.rejected:
            summary["rejected"] += sum(len(g.sets) for g in business)
            self._write_ta1(ic, address, summary)
            return
        self._state.remember(ic.control_number)
        if ic.groups and not business:
            summary["acks_received"] = summary.get("acks_received", 0) + len(ic.groups)
            return
        plans: list[tuple[Request, Outcome]] = []
        forced: dict[int, Finding] = {}
        for group in business:
            for s in group.sets:
                request = (
                    _read_request(s, segments.get(id(s))) if s.accepted and group.ack_code != "R" else None
                )
                if request is None:
                    continue
                outcome = self.scenario.outcome_for(request)
                if outcome.ack == "ta1_reject":
                    verdict = Ta1Verdict("R", FORCED_TA1_NOTE, TA1_CODES[FORCED_TA1_NOTE])
                    summary["rejected"] += sum(len(g.sets) for g in business)
                    self._write_ta1(replace(ic, ta1=verdict), address, summary)
                    return
                if outcome.ack == "reject":
                    forced[id(s)] = _forced_finding(segments.get(id(s), ()), s.set_id)
                else:
                    plans.append((request, outcome))
        if ic.ta1 is not None:
            self._write_ta1(ic, address, summary)
        if business:
            groups = tuple(self._force(g, forced) for g in business)
            accepted = sum(g.accepted_count for g in groups if g.ack_code != "R")
            summary["accepted"] += accepted
            summary["rejected"] += sum(len(g.sets) for g in groups) - accepted
            self._write_999(replace(ic, groups=groups), address, summary)
        self._schedule(plans, address, seen_at, summary)

    @staticmethod
    def _force(group: GroupReport, forced: Mapping[int, Finding]) -> GroupReport:
        if not any(id(s) in forced for s in group.sets):
            return group
        sets = tuple(
            replace(s, ack_code="R", set_codes=("5", *s.set_codes), findings=(*s.findings, forced[id(s)]))
            if id(s) in forced
            else s
            for s in group.sets
        )
        return replace(group, ack_code=_group_ack(group.group_codes, sets), sets=sets)

    def _move_processed(self, path: Path) -> None:
        target = self.processed / path.name
        for n in itertools.count(1):
            if not target.exists():
                break
            target = self.processed / f"{path.name}.{n}"
        try:
            path.rename(target)
        except OSError as exc:  # never answer the same file twice: leave it alone from now on
            self._stuck.add(path.name)
            log.error("sim.move_failed", file=safe_display(path.name), error=exc.__class__.__name__)

    # ----------------------------------------------------------------- acknowledgments

    def _ack_envelope(self, address: _Address) -> AckEnvelope:
        return AckEnvelope(
            address.our_qualifier,
            address.our_id,
            self._state.take("interchange"),
            self._state.take("group"),
            self._clock(),
            address.usage,
        )

    def _write_ta1(self, ic: InterchangeReport, address: _Address, summary: dict[str, Any]) -> None:
        env = self._ack_envelope(address)
        data = build_ta1(ic, env, address.delimiters)
        if data is not None:
            summary["acks"].append(self._write_out("TA1", env.interchange_control, data))
            summary["ta1"] = f"{ic.ta1.ack_code}/{ic.ta1.note_code}" if ic.ta1 else None

    def _write_999(self, ic: InterchangeReport, address: _Address, summary: dict[str, Any]) -> None:
        env = self._ack_envelope(address)
        first_set = self._state.take("set", len(ic.groups))
        data = build_999(ic, env, first_set, address.delimiters)
        if data is not None:
            summary["acks"].append(self._write_out("999", env.interchange_control, data))

    def _write_out(self, kind: str, control: int, data: bytes) -> str:
        """Write ``outbound/KIND-ISA13.x12`` under a hidden name, then rename it into view."""
        name = f"{kind}-{control:09d}.x12"
        temp = self.outbound / f".{name}.part"
        temp.write_bytes(data)
        temp.replace(self.outbound / name)
        return name

    # ----------------------------------------------------------------- business responses

    def _schedule(
        self,
        plans: Sequence[tuple[Request, Outcome]],
        address: _Address,
        seen_at: float,
        summary: dict[str, Any],
    ) -> None:
        by_due: dict[float, list[_Planned]] = {}
        for request, outcome in plans:
            due = seen_at + outcome.delay_seconds
            for delay, planned in self._steps(request, outcome):
                by_due.setdefault(due + delay, []).append(planned)
        for due in sorted(by_due):
            heapq.heappush(self._jobs, _Job(due, next(self._seq), address, by_due[due]))
            summary["scheduled"] += len(by_due[due])

    def _steps(self, request: Request, outcome: Outcome) -> Iterator[tuple[float, _Planned]]:
        if isinstance(request, EligibilityInquiry):
            yield 0.0, _Planned(request, outcome.eligibility)
            return
        review = outcome.review
        if review in ("pend", "pend_then_approve"):
            reference = f"SIMREF{self._state.take('reference'):06d}"
            yield 0.0, _Planned(request, "pend", reference)
            if review == "pend_then_approve":
                yield outcome.approve_after_seconds, _Planned(request, "approve", reference)
            return
        yield 0.0, _Planned(request, review)

    def _send_due(self) -> None:
        now = time.monotonic()
        while self._jobs and self._jobs[0].due <= now:
            job = heapq.heappop(self._jobs)
            try:
                written = self._write_job(job)
            except (X12GatewayError, OSError) as exc:
                log.error("sim.response_failed", error=exc.__class__.__name__, reason=str(exc)[:200])
                continue
            finally:
                self._state.save()
            if written is not None:
                log.info("sim.responded", file=written[0], **written[1])

    def _response(self, planned: _Planned, today: date) -> Response:
        trace = f"SIMTRN{self._state.take('trace'):06d}"
        request = planned.request
        if isinstance(request, EligibilityInquiry):
            answer = eligibility_answer(self.scenario, request, cast(Eligibility, planned.step), today)
            return EligibilityResponse(request, answer, trace)
        step = cast(Review, planned.step)
        cert = f"SIM{self._state.take('certification'):06d}" if certifies(step) else None
        decision = review_decision(request, step, today, certification=cert, reference=planned.reference)
        return ReviewResponse(request, decision, trace)

    def _write_job(self, job: _Job) -> tuple[str, dict[str, Any]] | None:
        when = self._clock()
        responses: list[Response] = []
        for p in job.planned:
            try:
                responses.append(self._response(p, when.date()))
            except X12GatewayError as exc:  # one impossible decision must not sink the others
                log.error("sim.decision_failed", outcome=p.step, reason=str(exc)[:200])
        if not responses:
            return None
        kinds = [
            k
            for k, cls in (("271", EligibilityResponse), ("278", ReviewResponse))
            if any(isinstance(r, cls) for r in responses)
        ]
        a = job.address
        control = self._state.take("interchange")
        header = InterchangeHeader(
            a.our_qualifier, a.our_id, a.their_qualifier, a.their_id, control, when, usage=a.usage
        )
        first_set = self._state.take("set", len(responses))
        batch = build_response_interchange(
            responses,
            header,
            application_sender=a.app_sender,
            application_receiver=a.app_receiver,
            group_controls=[self._state.take("group") for _ in kinds],
            set_controls=list(range(first_set, first_set + len(responses))),
            delimiters=a.delimiters,
        )
        steps: dict[str, int] = {}
        for p in job.planned:
            steps[p.step] = steps.get(p.step, 0) + 1
        return self._write_out("-".join(kinds), control, batch.data), {
            "sets": len(responses),
            "outcomes": steps,
        }
