"""Request feeds and the exactly-once audit shared by the crash and clearinghouse-fault suites.

A :class:`Feeder` writes inbox files (JSON lists and CSV batches) with unique client references and
canary PHI; :func:`audit` then checks a finished run from the outside: the store, the outbox, the work
folder and every file the clearinghouse received, and returns the problems it found (empty when every
request went out exactly once and every response came back exactly once).
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.runtime.config import FoldersConfig
from gateway.store import Store
from transactions.envelope_reader import Interchange, read_interchanges

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = ROOT / "sample_edi" / "requests"
CANARY_LAST_NAME = "CANARYTEST"
CANARY_BIRTH_DATE = "1957-03-29"
FINAL_STATES = frozenset({"answered"})
OPEN_STATES = frozenset({"new", "queued", "sent", "acknowledged", "pended"})
CSV_COLUMNS = (
    "payer_id",
    "payer_name",
    "provider_name",
    "provider_npi",
    "member_id",
    "last_name",
    "first_name",
    "birth_date",
    "gender",
    "service_types",
    "reference",
)


def _sample(stem: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((REQUESTS / f"{stem}.json").read_text())
    return doc


def eligibility(ref: str, member: str) -> dict[str, Any]:
    """A 270 request (JSON form) for a canary subscriber."""
    doc = _sample("270-subscriber")
    doc["trace_number"] = ref
    doc["subscriber"] = {
        **doc["subscriber"],
        "member_id": member,
        "last_name": CANARY_LAST_NAME,
        "birth_date": CANARY_BIRTH_DATE,
    }
    return doc


def review(ref: str, member: str, procedure: str) -> dict[str, Any]:
    """A 278 outpatient request; the simulator's test scenario pends 72148 and then approves it."""
    doc = _sample("278-outpatient-mri")
    doc["trace_number"] = ref
    doc["subscriber"] = {**doc["subscriber"], "member_id": member, "birth_date": CANARY_BIRTH_DATE}
    doc["lines"] = [{**line, "procedure": {"code": procedure}} for line in doc["lines"]]
    return doc


def csv_batch(rows: list[tuple[str, str]]) -> bytes:
    """A CSV eligibility batch: one row per (reference, member id)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for ref, member in rows:
        writer.writerow(
            [
                "ACME01",
                "ACME HEALTH PLAN",
                "RIVERSIDE IMAGING CENTER",
                "1234567893",
                member,
                CANARY_LAST_NAME,
                "GOLF",
                CANARY_BIRTH_DATE,
                "M",
                "30",
                ref,
            ]
        )
    return buf.getvalue().encode()


def drop(inbox: Path, name: str, data: bytes) -> None:
    """Write an inbox file the way a careful billing system does: hidden name first, then rename."""
    inbox.mkdir(parents=True, exist_ok=True)
    temp = inbox / f".{name}.tmp"
    temp.write_bytes(data)
    temp.rename(inbox / name)


@dataclass
class Feeder:
    """Writes inbox files with fresh references; remembers what it fed and what each should become."""

    inbox: Path
    rng: random.Random
    prefix: str = "CR"
    fed: dict[str, str] = field(default_factory=dict)  # reference -> "270" | "278" | "278-pend"
    files: int = 0
    _serial: int = 0

    def _next(self) -> tuple[str, str]:
        self._serial += 1
        return f"{self.prefix}-{self._serial:05d}", f"ZZM9{self._serial:08d}"

    def feed(self, count: int = 1) -> list[str]:
        """Drop ``count`` files of 1-3 requests each (JSON of 270s and 278s, or a CSV batch of 270s)."""
        refs: list[str] = []
        for _ in range(count):
            self.files += 1
            size = self.rng.randint(1, 3)
            if self.rng.random() < 0.2:
                rows = [self._next() for _ in range(size)]
                refs += self._remember(rows, "270")
                drop(self.inbox, f"batch-{self.files:04d}.csv", csv_batch(rows))
                continue
            docs = []
            for _ in range(size):
                ref, member = self._next()
                roll = self.rng.random()
                if roll < 0.6:
                    docs.append(eligibility(ref, member))
                    refs += self._remember([(ref, member)], "270")
                elif roll < 0.85:
                    docs.append(review(ref, member, "73721"))
                    refs += self._remember([(ref, member)], "278")
                else:
                    docs.append(review(ref, member, "72148"))
                    refs += self._remember([(ref, member)], "278-pend")
            drop(self.inbox, f"requests-{self.files:04d}.json", json.dumps(docs).encode())
        return refs

    def _remember(self, rows: list[tuple[str, str]], kind: str) -> list[str]:
        for ref, _ in rows:
            self.fed[ref] = kind
        return [ref for ref, _ in rows]


# --------------------------------------------------------------------------------------------- audit


def received(clearinghouse: Path) -> list[tuple[str, Interchange]]:
    """Every interchange the clearinghouse received (processed or still waiting), with its file name."""
    inbound = clearinghouse / "inbound"
    paths = [p for p in inbound.iterdir() if p.is_file() and not p.name.startswith(".")]
    paths += [p for p in (inbound / "processed").iterdir() if p.is_file()]
    return [(p.name, ic) for p in sorted(paths) for ic in read_interchanges(p.read_bytes())]


def settled(store: Store, refs: list[str] | dict[str, str]) -> bool:
    """Every reference has a request and none is still waiting for anything."""
    rows = requests_by_reference(store)
    return all(ref in rows and rows[ref][0]["state"] not in OPEN_STATES for ref in refs)


def drained(store: Store, clearinghouse: Path, refs: list[str] | dict[str, str]) -> bool:
    """Settled, every clearinghouse file collected, and every file of ours (acks too) sent."""
    if any(not p.name.startswith(".") for p in (clearinghouse / "outbound").iterdir()):
        return False
    with store.read() as tx:
        if any(tx.files.query(state=s, direction="out") for s in ("queued", "uploading", "renaming")):
            return False
    return settled(store, refs)


def requests_by_reference(store: Store) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    with store.read() as tx:
        for r in tx.requests.query(limit=10_000):
            ref = str(r.payload.get("client_reference"))
            history = [c.new_state for c in tx.audit.history("request", r.id)]
            auth = tx.results.get_authorization(r.tracking_number) if r.kind == "278" else None
            events = [e.new_status for e in tx.results.authorization_history(auth.id)] if auth else []
            out.setdefault(ref, []).append(
                {"tracking": r.tracking_number, "state": r.state, "history": history, "auth_events": events}
            )
    return out


def _received_controls(clearinghouse: Path, sender: str) -> tuple[Counter[str], dict[str, Counter[str]]]:
    """Tracking numbers of the request sets received, and every control number our sender used."""
    traces: Counter[str] = Counter()
    controls: dict[str, Counter[str]] = {"ISA13": Counter(), "GS06": Counter(), "ST02": Counter()}
    for _name, ic in received(clearinghouse):
        if ic.sender[1].strip() != sender:
            continue
        controls["ISA13"][ic.control_number] += 1
        for group in ic.groups:
            controls["GS06"][group.control_number] += 1
            for tset in group.transaction_sets:
                controls["ST02"][tset.control_number] += 1
                if tset.set_id in ("270", "278"):
                    bht03 = next((s.get(3) for s in tset.segments if s.tag == "BHT"), "")
                    traces[bht03] += 1
    return traces, controls


def _response_sets(store: Store) -> Counter[tuple[str, str, str]]:
    """(sender interchange control, ST02, set id) of every response set the gateway recorded."""
    seen: Counter[tuple[str, str, str]] = Counter()
    with store.read() as tx:
        for f in tx.files.query(direction="in", limit=10_000):
            if f.partner == "inbox":
                continue
            for ic in tx.envelopes.interchanges_of_file(f.id):
                for g in tx.envelopes.groups_of_interchange(ic.id):
                    for s in tx.envelopes.sets_of_group(g.id):
                        seen[(str(ic.control_number), s.control_number, s.set_id)] += 1
    return seen


EXPECTED_HISTORY = {
    "270": ["answered"],
    "278": ["answered"],
    "278-pend": ["pended", "answered"],
}
EXPECTED_AUTH_EVENTS = {"270": [], "278": ["approved"], "278-pend": ["pended", "approved"]}


def audit(
    store: Store, folders: FoldersConfig, clearinghouse: Path, fed: dict[str, str], sender: str = "X12GATEWAY"
) -> list[str]:
    """Everything that breaks exactly-once, as readable lines (no PHI: references and numbers only)."""
    rows = requests_by_reference(store)
    trackings = {found[0]["tracking"] for found in rows.values() if found}
    return [
        *_request_problems(rows, fed),
        *_clearinghouse_problems(clearinghouse, sender, trackings),
        *_response_problems(store, fed),
        *_folder_problems(folders, clearinghouse, trackings),
    ]


def _request_problems(rows: dict[str, list[dict[str, Any]]], fed: dict[str, str]) -> list[str]:
    """One request per reference, in its final state, with the expected history and no repeats."""
    problems: list[str] = []
    if set(rows) != set(fed):
        problems.append(f"requests for unknown or missing references: {sorted(set(rows) ^ set(fed))[:10]}")
    for ref, kind in fed.items():
        found = rows.get(ref, [])
        if len(found) != 1:
            problems.append(f"{ref}: {len(found)} requests instead of one")
            continue
        row = found[0]
        if row["state"] not in FINAL_STATES:
            problems.append(f"{ref}: state {row['state']}")
        business = [h for h in row["history"] if h in ("pended", "answered", "rejected", "invalid")]
        if business != EXPECTED_HISTORY[kind]:
            problems.append(f"{ref} ({kind}): state history {row['history']}")
        if row["auth_events"] != EXPECTED_AUTH_EVENTS[kind]:
            problems.append(f"{ref} ({kind}): authorization events {row['auth_events']}")
    return problems


def _clearinghouse_problems(clearinghouse: Path, sender: str, trackings: set[str]) -> list[str]:
    """Each request received exactly once; no ISA13, GS06 or ST02 of ours used twice."""
    problems: list[str] = []
    traces, controls = _received_controls(clearinghouse, sender)
    problems += [f"{t}: received {traces[t]} times by the clearinghouse" for t in trackings if traces[t] != 1]
    if set(traces) - trackings:
        problems.append(f"clearinghouse received unknown trackings {sorted(set(traces) - trackings)[:5]}")
    for kind, counter in controls.items():
        reused = [c for c, n in counter.items() if n > 1]
        if reused:
            problems.append(f"{kind} used more than once: {sorted(reused)[:10]}")
    return problems


def _response_problems(store: Store, fed: dict[str, str]) -> list[str]:
    """Each response set recorded once, and as many as the requests called for."""
    problems: list[str] = []
    responses = _response_sets(store)
    doubled = [k for k, n in responses.items() if n > 1]
    if doubled:
        problems.append(f"response sets recorded more than once: {doubled[:5]}")
    expected = sum(len(EXPECTED_HISTORY[k]) for k in fed.values())
    got = sum(1 for (_, _, set_id) in responses if set_id in ("271", "278"))
    if got != expected:
        problems.append(f"{got} response sets recorded, {expected} expected")
    return problems


def audit_realtime(
    store: Store, folders: FoldersConfig, received: list[bytes], fed: dict[str, str], *, retransmissions: bool
) -> list[str]:
    """The exactly-once audit for CAQH CORE real-time requests: ``received`` holds every payload the
    payer accepted (a retransmission after a lost answer sends the same interchange again, allowed
    only when ``retransmissions``). Each request is answered once, each answer recorded once, one
    result file per request, never one ISA13 for two different interchanges."""
    rows = requests_by_reference(store)
    trackings = {found[0]["tracking"] for found in rows.values() if found}
    return [
        *_request_problems(rows, fed),
        *_payer_problems(received, trackings, retransmissions=retransmissions),
        *_response_problems(store, fed),
        *_folder_problems(folders, None, trackings),
    ]


def _payer_problems(received: list[bytes], trackings: set[str], *, retransmissions: bool) -> list[str]:
    problems: list[str] = []
    traces: Counter[str] = Counter()
    by_control: dict[str, set[bytes]] = {}
    for payload in set(received):
        for ic in read_interchanges(payload):
            by_control.setdefault(ic.control_number, set()).add(payload)
            for group in ic.groups:
                for tset in group.transaction_sets:
                    traces[next((s.get(3) for s in tset.segments if s.tag == "BHT"), "")] += 1
    times = Counter(received)
    problems += [
        f"ISA13 {c} used for {len(p)} different interchanges" for c, p in by_control.items() if len(p) > 1
    ]
    problems += [f"{t}: in {traces[t]} different interchanges" for t in trackings if traces[t] != 1]
    if not retransmissions:
        problems += [f"an interchange was received {n} times" for n in times.values() if n > 1]
    return problems


def _folder_problems(folders: FoldersConfig, clearinghouse: Path | None, trackings: set[str]) -> list[str]:
    """One result file per request, saying answered; the work folder empty; nothing left uncollected."""
    problems: list[str] = []
    outbox = folders.outbox
    results = sorted(p.name for p in outbox.iterdir() if p.suffix == ".json" and not p.name.startswith("."))
    if results != sorted(f"{t}.json" for t in trackings):
        problems.append(f"outbox holds {len(results)} result files for {len(trackings)} requests")
    for name in results:
        doc = json.loads((outbox / name).read_text())
        if doc["state"] not in FINAL_STATES:
            problems.append(f"{name}: result says {doc['state']}")
    leftovers = [str(p.relative_to(folders.work)) for p in folders.work.rglob("*") if p.is_file()]
    if leftovers:
        problems.append(f"files left in the work folder: {leftovers[:10]}")
    waiting = (
        [p.name for p in (clearinghouse / "outbound").iterdir() if not p.name.startswith(".")]
        if clearinghouse is not None
        else []
    )
    if waiting:
        problems.append(f"clearinghouse files never collected: {waiting[:5]}")
    return problems
