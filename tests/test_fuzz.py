"""Bad input: valid X12 mutated at random (segments deleted, duplicated, swapped, truncated;
delimiters and counts corrupted; random bytes, non-ASCII and over-long elements inserted) and broken
inbox JSON/CSV. The validator returns a report and never raises; mapping, acknowledgment parsing and
the inbox parser raise nothing but the project's own errors; the gateway quarantines what it cannot
use with a reason and goes on; nothing bad is ever sent."""

from __future__ import annotations

import contextlib
import json
import tomllib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.lifecycle import FileState
from gateway.runtime.config import parse_config
from gateway.runtime.context import Context
from gateway.runtime.fsutil import internal_name
from gateway.runtime.runner import load_mapping_rules, open_context
from gateway.stages import batching, inbound, intake
from gateway.transport.keys import ensure_key, public_line
from mappings.mapper import default_rules, map_set
from payersim.build_responses import EligibilityResponse, build_response_interchange
from payersim.scenario import Scenario, eligibility_answer
from tests.e2e_harness import config_text
from tests.exactly_once import csv_batch, eligibility, review
from transactions.acks import AckEnvelope, build_999, parse_acks
from transactions.envelope_writer import InterchangeHeader
from transactions.errors import X12GatewayError
from transactions.models import EligibilityInquiry
from transactions.outbound import Request
from transactions.validation import Options, validate, validate_detailed

ROOT = Path(__file__).resolve().parent.parent
CORPUS_FILES = [
    *sorted((ROOT / "sample_edi" / "requests").glob("*.x12")),
    *sorted((ROOT / "sample_edi" / "responses").glob("*.x12")),
    *sorted((ROOT / "tests" / "public_x12" / "999").glob("*")),
    *sorted((ROOT / "tests" / "public_x12" / "278resp").glob("*.edi")),
]
CORPUS = [p.read_bytes() for p in CORPUS_FILES if p.suffix != ".json" and p.stat().st_size < 200_000]
RULES = default_rules()
WEIRD_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12
)


# --------------------------------------------------------------------------------------------- mutations


def _terminator(data: bytes) -> bytes:
    return data[105:106] if len(data) > 106 and data.startswith(b"ISA") else b"~"


def _split(data: bytes) -> tuple[list[bytes], bytes]:
    term = _terminator(data)
    return data.split(term), term


def _elements(data: bytes) -> bytes:
    return data[3:4] if len(data) > 4 and data.startswith(b"ISA") else b"*"


def delete_segment(draw: st.DrawFn, data: bytes) -> bytes:
    segs, term = _split(data)
    del segs[draw(st.integers(0, len(segs) - 1))]
    return term.join(segs)


def duplicate_segment(draw: st.DrawFn, data: bytes) -> bytes:
    segs, term = _split(data)
    i = draw(st.integers(0, len(segs) - 1))
    segs.insert(i, segs[i])
    return term.join(segs)


def swap_segments(draw: st.DrawFn, data: bytes) -> bytes:
    segs, term = _split(data)
    i, j = draw(st.integers(0, len(segs) - 1)), draw(st.integers(0, len(segs) - 1))
    segs[i], segs[j] = segs[j], segs[i]
    return term.join(segs)


def truncate(draw: st.DrawFn, data: bytes) -> bytes:
    return data[: draw(st.integers(0, len(data)))]


def corrupt_delimiter(draw: st.DrawFn, data: bytes) -> bytes:
    """Replace an ISA delimiter position, or one occurrence of a delimiter, with another character."""
    pool = b"*~:^|!>\n\r \x00\x1dA0"
    new = bytes([draw(st.sampled_from(pool))])
    if draw(st.booleans()) and len(data) > 106:
        at = draw(st.sampled_from([3, 82, 104, 105]))
        return data[:at] + new + data[at + 1 :]
    which = draw(st.sampled_from([_elements(data), _terminator(data), b":", b"^"]))
    count = data.count(which)
    if not count:
        return data
    nth = draw(st.integers(0, count - 1))
    at = -1
    for _ in range(nth + 1):
        at = data.index(which, at + 1)
    return data[:at] + new + data[at + 1 :]


def corrupt_count(draw: st.DrawFn, data: bytes) -> bytes:
    """Change the number in SE01, GE01, IEA01, an HL id or a control number."""
    segs, term = _split(data)
    sep = _elements(data)
    targets = [
        i for i, s in enumerate(segs) if s.lstrip(b"\r\n").startswith((b"SE", b"GE", b"IEA", b"HL", b"ST"))
    ]
    if not targets:
        return data
    i = draw(st.sampled_from(targets))
    parts = segs[i].split(sep)
    if len(parts) < 2:
        return data
    k = draw(st.integers(1, len(parts) - 1))
    parts[k] = draw(st.sampled_from([b"0", b"-1", b"99999999999", b"", b"1.5", b"X", b"00001"]))
    segs[i] = sep.join(parts)
    return term.join(segs)


def insert_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    at = draw(st.integers(0, len(data)))
    return data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at:]


def non_ascii(draw: st.DrawFn, data: bytes) -> bytes:
    """Put non-ASCII text (UTF-8, or a stray Latin-1 byte) inside an element."""
    segs, term = _split(data)
    i = draw(st.integers(0, len(segs) - 1))
    text = draw(WEIRD_TEXT).encode("utf-8") if draw(st.booleans()) else bytes([draw(st.integers(128, 255))])
    seg = segs[i]
    at = draw(st.integers(0, len(seg)))
    segs[i] = seg[:at] + text + seg[at:]
    return term.join(segs)


def over_long(draw: st.DrawFn, data: bytes) -> bytes:
    """Replace one element with a value far longer than any element may be."""
    segs, term = _split(data)
    sep = _elements(data)
    i = draw(st.integers(0, len(segs) - 1))
    parts = segs[i].split(sep)
    k = draw(st.integers(0, len(parts) - 1))
    parts[k] = bytes([draw(st.sampled_from(b"A9 "))]) * draw(st.integers(81, 20_000))
    segs[i] = sep.join(parts)
    return term.join(segs)


MUTATIONS: list[Callable[[st.DrawFn, bytes], bytes]] = [
    delete_segment,
    duplicate_segment,
    swap_segments,
    truncate,
    corrupt_delimiter,
    corrupt_count,
    insert_bytes,
    non_ascii,
    over_long,
]


@st.composite
def mutated_x12(draw: st.DrawFn) -> bytes:
    data = draw(st.sampled_from(CORPUS))
    for _ in range(draw(st.integers(1, 4))):
        data = draw(st.sampled_from(MUTATIONS))(draw, data)
    return data


# --------------------------------------------------------------------------------------------- pure core


@settings(max_examples=300)
@given(mutated_x12())
def test_validator_returns_a_report_and_never_raises(data: bytes) -> None:
    """Whatever the bytes, validate() and validate_detailed() return a report; they never raise."""
    report = validate(data)
    detailed = validate_detailed(data, Options(keep_placed=True))
    assert (report.fatal is None) == (detailed.report.fatal is None)
    for ic in report.interchanges:
        for g in ic.groups:
            for s in g.sets:
                assert s.ack_code in ("A", "E", "R")


@settings(max_examples=150)
@given(mutated_x12())
def test_mapping_and_acknowledgments_raise_only_our_errors(data: bytes) -> None:
    """Accepted sets map to records; our 999 can be built for any report; parsing acks fails only
    with X12GatewayError subclasses."""
    validation = validate_detailed(data, Options(keep_placed=True))
    by_offset = {s.report.offset: s for s in validation.sets}
    env = AckEnvelope("ZZ", "X12GATEWAY", 1, 1, _when(), "T")
    for ic in validation.report.interchanges:
        for g in ic.groups:
            for s in g.sets:
                if s.accepted:
                    map_set(by_offset[s.offset], ic.control_number, g.control_number, RULES)
        if not ic.rejected and ic.groups:
            build_999(ic, env, 1)
    with contextlib.suppress(X12GatewayError):
        parse_acks(data)


@settings(max_examples=150)
@given(mutated_x12(), st.sampled_from(["requests.x12", "requests.json", "batch.csv", "noext"]))
def test_inbox_parser_never_raises(data: bytes, name: str) -> None:
    """An inbox file is requests, per-request errors or one file-level reason; never an exception. Each
    error names an item and a reason, a file-level reason is non-empty text, and parsing is repeatable."""
    parsed = intake.parse_inbox_bytes(data, name)
    for error in parsed.errors:
        assert set(error) == {"index", "field", "reason"}
        assert isinstance(error["index"], int)
        assert error["index"] >= 0
        assert isinstance(error["field"], str)
        assert isinstance(error["reason"], str)
        assert error["field"]
        assert error["reason"]
    assert parsed.file_error is None or parsed.file_error.strip()
    if not parsed.requests and not parsed.errors:
        assert parsed.file_error, "an empty outcome always says why"
    again = intake.parse_inbox_bytes(data, name)
    assert (again.errors, again.file_error) == (parsed.errors, parsed.file_error)
    assert [ref for _, ref in again.requests] == [ref for _, ref in parsed.requests]


def _when() -> datetime:
    return datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


# --------------------------------------------------------------------------------------------- the gateway


@pytest.fixture
def gateway_ctx(tmp_path: Path) -> Iterator[Context]:
    """A gateway context (store, folders, one partner) that never needs the partner to answer."""
    ensure_key(tmp_path / "keys" / "host")
    text = config_text(
        port=22,
        host_key_line=public_line(tmp_path / "keys" / "host"),
        key_file=tmp_path / "keys" / "host",
        remote_root="",
    ).replace("[inbox]\nstable_seconds = 0", "[inbox]\nstable_seconds = 0\nmax_file_bytes = 20000")
    ctx = open_context(parse_config(tomllib.loads(text), tmp_path / "gw"))
    yield ctx
    ctx.store.close()


def _record_download(ctx: Context, name: str, data: bytes) -> int:
    sha, path = ctx.payloads.put(data)
    with ctx.store.begin() as tx:
        row = tx.files.record(
            direction="in",
            partner="sim",
            name=name,
            sha256=sha,
            size=len(data),
            payload_path=str(path),
            state=FileState.DOWNLOADED,
        )
    return row.id


def test_received_garbage_is_quarantined_with_a_reason_and_the_gateway_goes_on(gateway_ctx: Context) -> None:
    """Mutated files from the clearinghouse end delivered or quarantined (with a reason file); a good
    file after them is still processed."""
    ctx = gateway_ctx
    rules = load_mapping_rules(ctx.config)
    names = iter(range(1_000_000))

    @settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
    @given(mutated_x12())
    def one(data: bytes) -> None:
        file_id = _record_download(ctx, f"fuzz-{next(names)}.x12", data)
        inbound.process_downloaded(ctx, rules)
        with ctx.store.read() as tx:
            row = tx.files.get(file_id)
        assert row.state in ("delivered", "quarantined"), row.state
        if row.state == "quarantined":
            reason = ctx.config.folders.quarantine / f"{internal_name(file_id, row.name)}.reason.json"
            assert json.loads(reason.read_text())["reason"]

    one()
    good = (ROOT / "sample_edi" / "responses" / "271-subscriber-active.x12").read_bytes()
    file_id = _record_download(ctx, "good.x12", good)
    inbound.process_downloaded(ctx, rules)
    with ctx.store.read() as tx:
        assert tx.files.get(file_id).state == "delivered"


def _drop(ctx: Context, name: str, data: bytes) -> None:
    (ctx.config.folders.inbox / name).write_bytes(data)


def _reason_of(ctx: Context, name: str) -> dict[str, Any]:
    with ctx.store.read() as tx:
        (row,) = [f for f in tx.files.query(direction="in") if f.name == name]
    path = ctx.config.folders.quarantine / f"{internal_name(row.id, name)}.reason.json"
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def _request_count(ctx: Context) -> int:
    with ctx.store.read() as tx:
        return len(tx.requests.query(limit=1000))


GOOD = eligibility("BAD-0001", "ZZM900000001")


def _with(doc: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(doc))
    target = out
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return out


_DELETE = object()
BAD_FILES: list[tuple[str, bytes, str]] = [
    ("syntax.json", b'{"type": "270", "trace_number": ', "not valid JSON"),
    ("list-of-numbers.json", b"[1, 2, 3]", ""),
    ("wrong-type-services.json", json.dumps(_with(GOOD, "service_types", "30")).encode(), "service_types"),
    ("wrong-type-subscriber.json", json.dumps(_with(GOOD, "subscriber", ["DOE"])).encode(), "subscriber"),
    ("wrong-type-trace.json", json.dumps(_with(GOOD, "trace_number", 12345)).encode(), "trace_number"),
    ("bad-date.json", json.dumps(_with(GOOD, "subscriber.birth_date", "1970-13-45")).encode(), "birth_date"),
    ("missing-payer.json", json.dumps(_with(GOOD, "payer", _DELETE)).encode(), "payer"),
    ("missing-member.json", json.dumps(_with(GOOD, "subscriber.member_id", _DELETE)).encode(), "member_id"),
    ("bad-npi.json", json.dumps(_with(GOOD, "provider.npi", "1234567890")).encode(), "npi"),
    ("unknown-type.json", json.dumps(_with(GOOD, "type", "837")).encode(), "type"),
    ("unknown-payer.json", json.dumps(_with(GOOD, "payer.id", "NOSUCHPAYER")).encode(), "trading partner"),
    ("huge.json", b"[" + b" " * 30_000 + b"]", "byte limit"),
    ("binary.json", bytes(range(256)) * 4, ""),
    ("latin1.csv", "payer_id,name\n\xe9\n".encode("latin-1"), "UTF-8"),
    ("no-header.csv", b"ACME01,ACME HEALTH PLAN\n", ""),
    ("missing-column.csv", b"payer_id,payer_name\nACME01,ACME\n", "column"),
    ("empty.csv", b"", ""),
    ("bad-x12.x12", b"ISA*00*garbage~", "X12"),
]


@pytest.mark.parametrize(("name", "data", "says"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_inbox_file_is_quarantined_with_a_clear_reason_and_nothing_is_sent(
    gateway_ctx: Context, name: str, data: bytes, says: str
) -> None:
    """Wrong types, missing fields, huge files, unknown payers, broken CSV/X12: quarantined, reason
    file naming the problem, no request created, no file built for the partner."""
    ctx = gateway_ctx
    _drop(ctx, name, data)
    intake.intake(ctx)
    reason = _reason_of(ctx, name)
    assert reason["state"] == "quarantined"
    text = json.dumps(reason)
    assert says in text, text
    assert (ctx.config.folders.quarantine / internal_name(reason["file_id"], name)).exists()
    assert _request_count(ctx) == 0
    assert batching.batch_all(ctx) == 0


def test_csv_with_one_bad_row_sends_the_others(gateway_ctx: Context) -> None:
    """A CSV batch with one bad row: the good rows become requests, the bad one is reported by row."""
    ctx = gateway_ctx
    good = csv_batch([("ROW-1", "ZZM900000011"), ("ROW-2", "ZZM900000012")]).decode()
    lines = good.splitlines()
    bad = lines[1].replace("1234567893", "1234567890")  # an NPI whose check digit is wrong
    _drop(ctx, "mixed.csv", "\n".join([lines[0], lines[1], bad, lines[2]]).encode())
    intake.intake(ctx)
    reason = _reason_of(ctx, "mixed.csv")
    assert reason["state"] == "partially_accepted"
    assert [r["field"] for r in reason["requests"]] == ["row 3.provider.npi"]
    assert _request_count(ctx) == 2
    assert batching.batch_all(ctx) == 2


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(
        [
            "type",
            "trace_number",
            "payer",
            "payer.id",
            "provider",
            "provider.npi",
            "subscriber",
            "subscriber.last_name",
            "subscriber.member_id",
            "subscriber.birth_date",
            "subscriber.gender",
            "service_types",
            "service_date",
            "lines",
            "diagnoses",
            "request_category",
        ]
    ),
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True),
        st.text(max_size=300),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    ),
    st.booleans(),
)
def test_any_field_value_is_a_request_or_a_reason(path: str, value: object, is_278: bool) -> None:
    """Random values in any field of a 270 or 278: parsed into a request or rejected with a reason,
    never an exception."""
    base = review("FZ-1", "ZZM900000099", "73721") if is_278 else GOOD
    if is_278:
        path = path.replace("provider", "requester")  # a 278 names its provider "requester"
    doc = _with(base, path, value)
    parsed = intake.parse_inbox_bytes(json.dumps(doc).encode(), "r.json")
    assert parsed.file_error is None, "one well-formed JSON object is never a file-level problem"
    assert len(parsed.requests) + len(parsed.errors) == 1, "exactly one outcome for the one object"
    for error in parsed.errors:
        assert error["index"] == 0
        assert error["reason"]


def _inquiry(req: Request) -> EligibilityInquiry:
    """``req`` as the 270 inquiry the test stored (a 278 here fails the test)."""
    assert isinstance(req, EligibilityInquiry)
    return req


def test_good_sets_beside_a_bad_one_are_processed_and_the_bad_one_is_rejected_in_our_999(
    gateway_ctx: Context,
) -> None:
    """One 271 interchange answering two requests, the second set broken: the first is applied and
    delivered, the second is not; our 999 accepts set 1 and rejects set 2 (group partially accepted)."""
    ctx = gateway_ctx
    docs = [eligibility("PART-1", "ZZM900000021"), eligibility("PART-2", "ZZM900000022")]
    _drop(ctx, "two.json", json.dumps(docs).encode())
    intake.intake(ctx)
    assert batching.batch_all(ctx) == 2
    with ctx.store.read() as tx:
        rows = sorted(tx.requests.query(limit=10), key=lambda r: r.id)
    requests = [_inquiry(batching.load_request(r)) for r in rows]
    today = _when().date()
    answers = [
        EligibilityResponse(r, eligibility_answer(Scenario(), r, "active", today), f"PAYERTRN{i}")
        for i, r in enumerate(requests)
    ]
    header = InterchangeHeader("ZZ", "CLEARINGHOUSE", "ZZ", "X12GATEWAY", 501, _when())
    data = build_response_interchange(
        answers,
        header,
        application_sender="CLEARINGHOUSE",
        application_receiver="X12GATEWAY",
        group_controls=[501],
        set_controls=[1, 2],
    ).data
    second = data.index(b"ST*271*0002")
    subscriber = data.index(b"NM1*IL*", second)
    broken = data[:subscriber] + data[data.index(b"~", subscriber) + 1 :]  # 2100C NM1 removed
    file_id = _record_download(ctx, "271-two.x12", broken)
    inbound.process_downloaded(ctx, load_mapping_rules(ctx.config))

    with ctx.store.read() as tx:
        assert tx.files.get(file_id).state == "delivered"
        states = [tx.requests.get(r.id).state for r in rows]
        acks = [f for f in tx.files.query(direction="out", limit=10) if "999" in f.name]
    assert states[0] == "answered"
    assert states[1] != "answered"
    assert (ctx.config.folders.outbox / f"{rows[0].tracking_number}.json").exists()
    (ack,) = acks
    text = ctx.payloads.get(ack.sha256).decode()
    assert "IK5*A" in text
    assert "IK5*R" in text
    assert "AK9*P*2*2*1" in text


@settings(max_examples=40)
@given(
    st.sampled_from(
        ["payer.id", "payer.name", "subscriber.last_name", "subscriber.member_id", "trace_number"]
    ),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40)
    | st.sampled_from(["\udc80", "A\ud800B", "\x00", "\u202e", "e\u0301", "\U0001f600", "A" * 5000]),
)
def test_hostile_text_in_inbox_json_never_stalls_the_inbox(
    routing_ctx: Context, path: str, text: str
) -> None:
    """Lone surrogates, NUL, bidi controls, emoji and very long strings (all legal in JSON) in a routed
    request: the file ends accepted or quarantined, never raises, and the next file still goes through."""
    ctx = routing_ctx
    doc = _with(GOOD, path, text)
    raw = json.dumps(doc).encode()  # \\u escapes keep lone surrogates legal JSON
    name = f"hostile-{next(_SERIAL)}.json"
    _drop(ctx, name, raw)
    intake.intake(ctx)
    with ctx.store.read() as tx:
        (row,) = [f for f in tx.files.query(direction="in", limit=1000) if f.name == name]
    assert row.state in ("accepted", "quarantined", "duplicate"), row.state
    batching.batch_all(ctx)


_SERIAL = iter(range(1_000_000))


@pytest.fixture(scope="module")
def routing_ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Context]:
    """One context for a whole property run, routing every payer to the partner (default_partner)."""
    base = tmp_path_factory.mktemp("routing")
    ensure_key(base / "keys" / "host")
    text = config_text(
        port=22,
        host_key_line=public_line(base / "keys" / "host"),
        key_file=base / "keys" / "host",
        remote_root="",
    )
    text += '\n[routing]\ndefault_partner = "sim"\n'
    ctx = open_context(parse_config(tomllib.loads(text), base / "gw"))
    yield ctx
    ctx.store.close()
