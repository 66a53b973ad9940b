"""``log show``: what one reference names, with everything an operator needs to answer "what happened".

A reference can name a file (``file:12`` or a bare file id), an interchange (ISA13), a group (GS06), a
transaction set (ST02, or ``set:N`` by row id), a trace number, a tracking number or a certification
number. Each resolves to a *subject*: a request (traces, tracking and certification numbers lead
there), a file, or a single transaction set. Bare numbers are looked up as all of file id, ISA13, GS06
and ST02, so ``1`` is usually ambiguous: the candidates are returned and the operator picks one by prefix.

The views are plain JSON-able dicts (``--json`` prints them as they are); PHI is masked by the session's
policy before it enters a view.

How transactions relate, given what the store records: a request's own set carries ``request_id``;
responses (271/278) echo the tracking number as TRN02 and BHT03, so they are found by trace number;
999s and TA1s name our group and set control numbers, so they are found by reading the payloads of
the partner's acknowledgment files received after the set was sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gateway.lifecycle import event_between
from gateway.operators import core_view
from gateway.operators.formatting import iso
from gateway.operators.masking import Phi
from gateway.operators.session import Session
from gateway.operators.x12view import ParsedFile, control_int, parse_payload, segment_views
from gateway.store import FileRow, NotFoundError, RequestRow, StateChange, TransactionSetRow, Tx
from transactions.acks import ParsedAcks, parse_acks
from transactions.errors import X12GatewayError

INBOX = "inbox"
PREFIXES = ("file", "set", "isa", "gs", "st", "trace", "tracking", "cert")
RESPONSE_SETS = frozenset({"271", "278"})
ACK_SCAN_LIMIT = 200  # acknowledgment files read per set when looking for its 999/TA1
MATCH_LIMIT = 50


@dataclass(frozen=True)
class Subject:
    """What a reference resolved to: ``kind`` is request, file or set; ``key`` its identifier."""

    kind: str
    key: str
    label: str

    @property
    def ref(self) -> str:
        prefix = {"request": "tracking", "file": "file", "set": "set"}[self.kind]
        return f"{prefix}:{self.key}"


def history_json(changes: Iterable[StateChange]) -> list[dict[str, Any]]:
    return [
        {
            "at": iso(c.at),
            "entity": c.entity_type,
            "from": c.old_state,
            "to": c.new_state,
            "event": event_between(c.entity_type, c.old_state, c.new_state),
            "detail": c.detail,
        }
        for c in changes
    ]


def file_json(f: FileRow, phi: Phi) -> dict[str, Any]:
    return {
        "id": f.id,
        "name": phi.file_name(f.name),
        "direction": f.direction,
        "partner": f.partner,
        "state": f.state,
        "reason": f.reason,
        "size": f.size,
        "sha256": f.sha256,
        "created_at": iso(f.created_at),
        "updated_at": iso(f.updated_at),
    }


class Resolver:
    """Turns a reference into subjects (several when it is ambiguous)."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def resolve(self, ref: str) -> list[Subject]:
        text = ref.strip()
        prefix, sep, value = text.partition(":")
        if sep and prefix.lower() in PREFIXES:
            kinds: tuple[str, ...] = (prefix.lower(),)
            text = value.strip()
        else:
            kinds = ("tracking", "trace", "cert")
            if text.isdigit():
                kinds = ("file", "isa", "gs", "st", *kinds)
        found: dict[tuple[str, str], Subject] = {}
        for kind in kinds:
            for subject in getattr(self, f"_by_{kind}")(text):
                found.setdefault((subject.kind, subject.key), subject)
        order = {"request": 0, "file": 1, "set": 2}
        return sorted(
            found.values(), key=lambda s: (order[s.kind], int(s.key) if s.key.isdigit() else 0, s.key)
        )

    # each finder returns subjects; a malformed value for that kind simply finds nothing

    def _request(self, req: RequestRow) -> Subject:
        return Subject("request", req.tracking_number, f"{req.kind} request ({req.state})")

    def _file(self, file_id: int) -> list[Subject]:
        try:
            f = self.tx.files.get(file_id)
        except NotFoundError:
            return []
        return [Subject("file", str(f.id), f"{f.name} ({f.direction} {f.partner}, {f.state})")]

    def _set(self, set_row_id: int) -> list[Subject]:
        try:
            s = self.tx.envelopes.get_set(set_row_id)
        except NotFoundError:
            return []
        file_id = self.tx.envelopes.get_interchange(s.interchange_id).file_id
        return [Subject("set", str(s.id), f"{s.set_id} ST02 {s.control_number} in file {file_id}")]

    def _by_file(self, value: str) -> list[Subject]:
        return self._file(int(value)) if value.isdigit() else []

    def _by_set(self, value: str) -> list[Subject]:
        return self._set(int(value)) if value.isdigit() else []

    def _by_isa(self, value: str) -> list[Subject]:
        if not value.isdigit():
            return []
        out: list[Subject] = []
        for ic in self.tx.envelopes.find_interchanges(int(value))[:MATCH_LIMIT]:
            out += self._file(ic.file_id)
        return out

    def _by_gs(self, value: str) -> list[Subject]:
        if not value.isdigit():
            return []
        out: list[Subject] = []
        for g in self.tx.envelopes.find_groups(int(value))[:MATCH_LIMIT]:
            out += self._file(self.tx.envelopes.get_interchange(g.interchange_id).file_id)
        return out

    def _by_st(self, value: str) -> list[Subject]:
        if not value or len(value) > 9:
            return []
        out: list[Subject] = []
        for s in self.tx.envelopes.find_sets_by_control(value, limit=MATCH_LIMIT):
            out += self._set(s.id)
        return out

    def _by_tracking(self, value: str) -> list[Subject]:
        req = self.tx.requests.get_by_tracking(value)
        return [self._request(req)] if req else []

    def _by_trace(self, value: str) -> list[Subject]:
        out: list[Subject] = []
        for s in self.tx.envelopes.find_sets(trace_number=value, limit=MATCH_LIMIT):
            req = self._request_of(s.request_id, s.trace_numbers, s.bht03)
            out += [self._request(req)] if req else self._set(s.id)
        return out

    def _by_cert(self, value: str) -> list[Subject]:
        out: list[Subject] = []
        for auth in self.tx.results.find_authorizations(certification_number=value, limit=MATCH_LIMIT):
            req = self.tx.requests.get_by_tracking(auth.tracking_number)
            if req:
                out.append(self._request(req))
        return out

    def _request_of(
        self, request_id: int | None, traces: Iterable[str], bht03: str | None
    ) -> RequestRow | None:
        if request_id is not None:
            return self.tx.requests.get(request_id)
        candidates = [*traces, *([bht03] if bht03 else [])]
        found = self.tx.requests.by_tracking(candidates)
        return next((found[c] for c in candidates if c in found), None)


class Views:
    """Builds the show views, caching files, envelope rows and parsed payloads for one command."""

    def __init__(self, session: Session, tx: Tx) -> None:
        self.session = session
        self.tx = tx
        self._files: dict[int, FileRow] = {}
        self._envelopes: dict[int, list[dict[str, Any]]] = {}
        self._parsed: dict[int, ParsedFile | None] = {}
        self._acks: dict[int, ParsedAcks | None] = {}
        self.trackings: set[str] = set()  # requests whose PHI a view shows (for the reveal audit)

    # -- caches --------------------------------------------------------------------------------

    def file(self, file_id: int) -> FileRow:
        if file_id not in self._files:
            self._files[file_id] = self.tx.files.get(file_id)
        return self._files[file_id]

    def envelope_rows(self, file_id: int) -> list[dict[str, Any]]:
        self._load_envelopes([file_id])
        return self._envelopes[file_id]

    def _load_envelopes(self, file_ids: list[int]) -> None:
        """Envelope rows of the files not cached yet, in one query."""
        missing = [i for i in file_ids if i not in self._envelopes]
        if not missing:
            return
        for i in missing:
            self._envelopes[i] = []
        for row in self.tx.envelopes.rows_of_files(missing):
            self._envelopes[row["file_id"]].append(row)

    def _bytes(self, file_id: int) -> bytes | None:
        f = self.file(file_id)
        return self.session.payload(f.sha256, f.payload_path)

    def parsed(self, file_id: int) -> ParsedFile | None:
        if file_id not in self._parsed:
            data = self._bytes(file_id)
            self._parsed[file_id] = parse_payload(data) if data is not None else None
        return self._parsed[file_id]

    def acks(self, file_id: int) -> ParsedAcks | None:
        if file_id not in self._acks:
            data = self._bytes(file_id)
            try:
                self._acks[file_id] = parse_acks(data) if data is not None else None
            except X12GatewayError:
                self._acks[file_id] = None
        return self._acks[file_id]

    def envelope_of_set(self, set_row_id: int) -> tuple[FileRow, dict[str, Any]]:
        s = self.tx.envelopes.get_set(set_row_id)
        f = self.file(self.tx.envelopes.get_interchange(s.interchange_id).file_id)
        row = next(r for r in self.envelope_rows(f.id) if r["set_row_id"] == set_row_id)
        return f, row

    # -- relations -----------------------------------------------------------------------------

    def tracking_of(self, row: dict[str, Any]) -> str | None:
        """The tracking number a set belongs to: its request, or the request its traces/BHT03 name."""
        if row.get("tracking_number"):
            return str(row["tracking_number"])
        candidates = [*row.get("trace_numbers", []), *([row["bht03"]] if row.get("bht03") else [])]
        found = self.tx.requests.by_tracking(candidates)
        return next((c for c in candidates if c in found), None)

    def _tracking_of_set(self, s: TransactionSetRow) -> str | None:
        if s.request_id is not None:
            return self.tx.requests.get(s.request_id).tracking_number
        return self.tracking_of({"trace_numbers": list(s.trace_numbers), "bht03": s.bht03})

    def response_sets(self, tracking: str) -> list[int]:
        """Inbound 271/278 sets that answer the request with this tracking number, oldest first."""
        sets = {
            s.id: s
            for s in [
                *self.tx.envelopes.find_sets(trace_number=tracking, limit=MATCH_LIMIT),
                *self.tx.envelopes.find_sets(bht03=tracking, limit=MATCH_LIMIT),
            ]
        }
        out = []
        for s in sets.values():
            if s.set_id not in RESPONSE_SETS:
                continue
            if self.file(self.tx.envelopes.get_interchange(s.interchange_id).file_id).direction == "in":
                out.append(s.id)
        return sorted(out)

    def acknowledgments(self, f: FileRow, row: dict[str, Any]) -> list[dict[str, Any]]:
        """The 999 and TA1 verdicts the partner sent about one of our outbound sets."""
        out: list[dict[str, Any]] = []
        candidates = self.tx.files.page(
            partner=f.partner, direction="in", since=f.created_at, newest_first=False, limit=ACK_SCAN_LIMIT
        )
        self._load_envelopes([c.id for c in candidates])
        for cand in candidates:
            rows = self.envelope_rows(cand.id)
            ack_rows = [r for r in rows if r["set_id"] == "999" or r["set_row_id"] is None]
            if not ack_rows or all(r["receiver"] != row["sender"] for r in ack_rows):
                continue
            acks = self.acks(cand.id)
            if acks is None:
                continue
            out += self._group_verdicts(cand, rows, acks, row) + self._ta1_verdicts(cand, acks, row)
            if any(v["kind"] == "999" for v in out):
                break  # the group's 999 has been found; a TA1 for the interchange comes before it
        return out

    def _group_verdicts(
        self, cand: FileRow, rows: list[dict[str, Any]], acks: ParsedAcks, row: dict[str, Any]
    ) -> list[dict[str, Any]]:
        out = []
        for ga in acks.groups:
            if (
                ga.functional_id != row["functional_id"]
                or control_int(ga.group_control) != row["group_control"]
            ):
                continue
            verdict = next((s for s in ga.sets if s.control_number == row["set_control"]), None)
            ack_set = next(
                (
                    r
                    for r in rows
                    if r["set_id"] == "999"
                    and r["set_control"] == ga.ack_set_control
                    and r["interchange_control"] == control_int(ga.ack_interchange)
                ),
                None,
            )
            out.append(
                {
                    "relation": "acknowledgment",
                    "kind": "999",
                    "file_id": cand.id,
                    "file": self.session.phi.file_name(cand.name),
                    "set_row_id": ack_set["set_row_id"] if ack_set else None,
                    "control_number": ga.ack_set_control,
                    "ack_status": verdict.ack_code if verdict else ga.ack_code,
                    "group_ack": ga.ack_code,
                    "errors": [
                        {"segment": e.segment, "position": e.position, "element": e.element, "code": e.code}
                        for e in (verdict.errors if verdict else ())
                    ],
                    "at": iso(cand.created_at),
                }
            )
        return out

    def _ta1_verdicts(self, cand: FileRow, acks: ParsedAcks, row: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                "relation": "acknowledgment",
                "kind": "TA1",
                "file_id": cand.id,
                "file": self.session.phi.file_name(cand.name),
                "set_row_id": None,
                "control_number": ta.ack_interchange,
                "ack_status": ta.ack_code,
                "note_code": ta.note_code,
                "at": iso(cand.created_at),
            }
            for ta in acks.interchanges
            if control_int(ta.interchange_control) == row["interchange_control"]
        ]

    def acknowledged_by(self, f: FileRow, row: dict[str, Any]) -> list[dict[str, Any]]:
        """For a received 999 set: our sets it gives a verdict on."""
        acks = self.acks(f.id)
        if acks is None:
            return []
        out = []
        for ga in acks.groups:
            if (
                ga.ack_set_control != row["set_control"]
                or control_int(ga.ack_interchange) != row["interchange_control"]
            ):
                continue
            for g in self.tx.envelopes.find_groups(control_int(ga.group_control)):
                ic = self.tx.envelopes.get_interchange(g.interchange_id)
                if g.functional_id != ga.functional_id or ic.sender != row["receiver"]:
                    continue
                verdicts = {v.control_number: v.ack_code for v in ga.sets}
                for s in self.tx.envelopes.sets_of_group(g.id):
                    out.append(
                        {
                            "relation": "acknowledges",
                            "set_row_id": s.id,
                            "set_id": s.set_id,
                            "control_number": s.control_number,
                            "file_id": ic.file_id,
                            "ack_status": verdicts.get(s.control_number, ga.ack_code),
                            "tracking_number": self._tracking_of_set(s),
                        }
                    )
        return out

    def related(self, f: FileRow, row: dict[str, Any]) -> list[dict[str, Any]]:
        """Request <-> 999/TA1 <-> response links of one set."""
        out: list[dict[str, Any]] = []
        if row["set_id"] == "999":
            return self.acknowledged_by(f, row)
        tracking = self.tracking_of(row)
        if tracking:
            out.append({"relation": "request", "tracking_number": tracking})
        if f.direction == "out":
            out += self.acknowledgments(f, row)
            for set_row_id in self.response_sets(tracking) if tracking else []:
                out.append(self._set_summary("response", set_row_id))
        elif tracking:
            req = self.tx.requests.get_by_tracking(tracking)
            sent = self.tx.envelopes.find_sets(request_id=req.id, limit=MATCH_LIMIT) if req else []
            out += [self._set_summary("request set", s.id) for s in sorted(sent, key=lambda s: s.id)]
        return out

    def _set_summary(self, relation: str, set_row_id: int) -> dict[str, Any]:
        f, row = self.envelope_of_set(set_row_id)
        return {
            "relation": relation,
            "set_row_id": set_row_id,
            "set_id": row["set_id"],
            "control_number": row["set_control"],
            "file_id": f.id,
            "file": self.session.phi.file_name(f.name),
            "ack_status": row["set_ack"],
            "state": row["set_state"],
            "at": iso(row["set_created_at"]),
        }

    # -- blocks --------------------------------------------------------------------------------

    def set_block(self, set_row_id: int, *, related: bool = True) -> dict[str, Any]:
        """One transaction set: envelope, acknowledgment, history, relations and segments."""
        f, row = self.envelope_of_set(set_row_id)
        history = sorted(
            [
                *self.tx.audit.history("transaction_set", set_row_id),
                *self.tx.audit.history("transaction_set.ack", set_row_id),
            ],
            key=lambda c: c.id,
        )
        tracking = self.tracking_of(row)
        if tracking:
            self.trackings.add(tracking)
        parsed = self.parsed(f.id)
        key = (row["interchange_control"], row["group_control"] or 0, row["set_control"])
        vs = parsed.sets.get(key) if parsed else None
        return {
            "set_row_id": set_row_id,
            "set_id": row["set_id"],
            "control_number": row["set_control"],
            "direction": f.direction,
            "partner": f.partner,
            "file": {"id": f.id, "name": self.session.phi.file_name(f.name), "state": f.state},
            "interchange": {
                "control_number": row["interchange_control"],
                "sender": row["sender"],
                "receiver": row["receiver"],
                "ack_status": row["interchange_ack"],
            },
            "group": {
                "control_number": row["group_control"],
                "functional_id": row["functional_id"],
                "version": row["version"],
                "ack_status": row["group_ack"],
            },
            "ack_status": row["set_ack"],
            "state": row["set_state"],
            "trace_numbers": row["trace_numbers"],
            "bht03": row["bht03"],
            "tracking_number": tracking,
            "created_at": iso(row["set_created_at"]),
            "history": history_json(history),
            "related": self.related(f, row) if related else [],
            "segments": segment_views(vs, self.session.phi) if vs is not None else None,
        }

    def unrecorded_blocks(self, f: FileRow) -> list[dict[str, Any]]:
        """Sets of a file the store has no envelope rows for (our own 999/TA1, an inbox X12 file)."""
        parsed = self.parsed(f.id)
        if parsed is None:
            return []
        parties = {
            control_int(ic.control_number): (
                f"{ic.sender_qualifier}:{ic.sender}",
                f"{ic.receiver_qualifier}:{ic.receiver}",
            )
            for ic in parsed.interchanges
        }
        return [
            {
                "set_row_id": None,
                "set_id": parsed.sets[key].report.set_id,
                "control_number": key[2],
                "direction": f.direction,
                "partner": f.partner,
                "file": {"id": f.id, "name": self.session.phi.file_name(f.name), "state": f.state},
                "interchange": {
                    "control_number": key[0],
                    "sender": parties.get(key[0], ("", ""))[0],
                    "receiver": parties.get(key[0], ("", ""))[1],
                },
                "group": {"control_number": key[1], "functional_id": functional_id},
                "ack_status": None,
                "state": None,
                "history": [],
                "related": [],
                "segments": segment_views(parsed.sets[key], self.session.phi),
            }
            for key, functional_id in parsed.order
        ]

    # -- subjects ------------------------------------------------------------------------------

    def request_view(self, tracking: str) -> dict[str, Any]:
        req = self.tx.requests.get_by_tracking(tracking)
        if req is None:
            raise NotFoundError("request not found")
        self.trackings.add(tracking)
        phi = self.session.phi
        outbound = sorted(s.id for s in self.tx.envelopes.find_sets(request_id=req.id, limit=MATCH_LIMIT))
        ids: list[int] = []
        blocks: dict[int, dict[str, Any]] = {}
        for set_row_id in outbound:
            blocks[set_row_id] = self.set_block(set_row_id)
            for rel in blocks[set_row_id]["related"]:
                if rel.get("set_row_id") is not None and rel["relation"] in ("acknowledgment", "response"):
                    ids.append(rel["set_row_id"])
        for set_row_id in ids:
            if set_row_id not in blocks:
                blocks[set_row_id] = self.set_block(set_row_id)
        source = self.file(req.source_file_id) if req.source_file_id is not None else None
        return {
            "subject": "request",
            "request": {
                "tracking_number": req.tracking_number,
                "kind": req.kind,
                "client_reference": req.payload.get("client_reference"),
                "payer_id": req.payer_id,
                "partner": req.partner,
                "state": req.state,
                "reason": req.reason,
                "created_at": iso(req.created_at),
                "updated_at": iso(req.updated_at),
                "due_at": iso(req.due_at),
                "source_file": {
                    "id": source.id,
                    "name": self.session.phi.file_name(source.name),
                    "state": source.state,
                    "source": source.partner,  # "inbox", or "api" for a call to the HTTP API
                }
                if source
                else None,
            },
            "patient": {
                "subscriber": phi.person(req.payload.get("subscriber")),
                "dependent": phi.person(req.payload.get("dependent")),
            },
            "history": history_json(self.tx.audit.history("request", req.id)),
            "http_exchanges": core_view.of_files(self.tx, self._files_of_sets(outbound)),
            "result": self.result(req),
            "transactions": [blocks[k] for k in sorted(blocks)],
        }

    def _files_of_sets(self, set_row_ids: list[int]) -> list[int]:
        envelopes = self.tx.envelopes
        return [envelopes.get_interchange(envelopes.get_set(i).interchange_id).file_id for i in set_row_ids]

    def result(self, req: RequestRow) -> dict[str, Any] | None:
        """The latest answer: an authorization (with its event history) or an eligibility result."""
        if req.kind == "278":
            auth = self.tx.results.get_authorization(req.tracking_number)
            if auth is None:
                return None
            record = self.session.phi.document(auth.record)
            return {
                "kind": "authorization",
                "status": auth.status,
                "certification_number": auth.certification_number,
                "effective_from": iso(auth.effective_from),
                "effective_to": iso(auth.effective_to),
                "updated_at": iso(auth.updated_at),
                "events": events_json(self.tx, auth.id),
                "services": record.get("services", []),
            }
        elig = self.tx.results.get_eligibility(req.tracking_number)
        if elig is None:
            return None
        return {
            "kind": "eligibility",
            "status": elig.status,
            "effective_from": iso(elig.effective_from),
            "effective_to": iso(elig.effective_to),
            "updated_at": iso(elig.updated_at),
        }

    def file_view(self, file_id: int) -> dict[str, Any]:
        f = self.file(file_id)
        rows = self.envelope_rows(file_id)
        set_ids = [r["set_row_id"] for r in rows if r["set_row_id"] is not None]
        history = self.tx.audit.history("file", file_id)
        produced = self.tx.requests.of_file(file_id) if f.partner == INBOX else []
        self.trackings.update(r.tracking_number for r in produced)
        acknowledges = next(
            (c.detail["acknowledges_file"] for c in history if c.detail and "acknowledges_file" in c.detail),
            None,
        )
        return {
            "subject": "file",
            "file": file_json(f, self.session.phi),
            "history": history_json(history),
            "http_exchanges": core_view.exchanges(history, file_id),
            "quarantine": [
                {"at": iso(q.created_at), **q.reason} for q in self.tx.quarantine.query(file_id=file_id)
            ],
            "requests": [
                {
                    "tracking_number": r.tracking_number,
                    "kind": r.kind,
                    "client_reference": r.payload.get("client_reference"),
                    "state": r.state,
                }
                for r in produced
            ],
            "acknowledges_file": acknowledges,
            "interchanges_without_sets": [
                {"control_number": r["interchange_control"], "ack_status": r["interchange_ack"]}
                for r in rows
                if r["set_row_id"] is None
            ],
            "transactions": ([self.set_block(i) for i in set_ids] if rows else self.unrecorded_blocks(f)),
        }

    def set_view(self, set_row_id: int) -> dict[str, Any]:
        return {"subject": "set", "transactions": [self.set_block(set_row_id)]}

    def view(self, subject: Subject) -> dict[str, Any]:
        if subject.kind == "request":
            return self.request_view(subject.key)
        if subject.kind == "file":
            return self.file_view(int(subject.key))
        return self.set_view(int(subject.key))


def events_json(tx: Tx, authorization_id: int) -> list[dict[str, Any]]:
    return [
        {
            "at": iso(e.at),
            "from": e.old_status,
            "to": e.new_status,
            "certification_number": e.certification_number,
        }
        for e in tx.results.authorization_history(authorization_id)
    ]
