"""``x12gw claims check FILE [--json] [--config FILE] [--commit]``: match every claim line to its
authorization before billing, and say how to fix each mismatch.

FILE is an 837P (005010X222A1, validated against the implementation guide first) or a JSON claim
document (see ``transactions.claims837``). Authorizations come from the gateway's store: by the
claim's prior-authorization number (REF*G1), else by member (hash), procedure and service date; lines
without an authorization are judged by the pre-certification rules (``[precert] rules_file``).

Nothing is written unless ``--commit`` is given: then the units of every line that passed are recorded
against its authorization, once per claim line (committing again adds nothing), so the next check
counts them as already billed. Exit 0 when every line passes, 1 when any line fails (or the 837P is
rejected), 2 on usage, configuration or unreadable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from gateway.cli.validate_cmd import print_report
from gateway.errors import ConfigError
from gateway.runtime.config import GatewayConfig, load_config
from gateway.runtime.storeopen import open_store, verified_member_key
from gateway.stages.precert_gate import load_rules, member_evidence
from gateway.store import Store, Tx, hash_member_id
from policy.claims import (
    Authorization,
    Candidates,
    LineResult,
    PrecertLookup,
    authorization_from_record,
    check_claims,
)
from policy.precert import Evidence, PrecertDecision, PrecertRules, Service, decide
from transactions.claims837 import Claim, ClaimLine, parse_claims_document, read_837p
from transactions.errors import RequestError
from transactions.findings import ValidationReport
from transactions.jsonform import to_dict
from transactions.validation import Options, validate_detailed

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("claims", help="check claims against authorizations before billing")
    actions = p.add_subparsers(dest="claims_command", required=True, metavar="ACTION")
    c = actions.add_parser("check", help="match each claim line (837P or JSON) to its authorization")
    c.add_argument("file", type=Path)
    c.add_argument("--json", action="store_true", help="print {ok, committed, lines: [...]} as JSON")
    c.add_argument("--config", help="gateway.toml (default: $X12GW_CONFIG or ./gateway.toml)")
    c.add_argument("--commit", action="store_true", help="record the units of the lines that pass")
    c.add_argument(
        "--as-of", type=date.fromisoformat, help="today's date for retro deadlines (default: today)"
    )
    c.set_defaults(func=run)


@dataclass(frozen=True)
class ClaimsInput:
    """The claims of a file, or why there are none (a rejected 837P keeps its report)."""

    claims: list[Claim]
    rejected: ValidationReport | None = None


def read_claims(data: bytes) -> ClaimsInput:
    """Claims from 837P bytes (validated first) or a JSON document; RequestError when unreadable."""
    if data.lstrip(b"\xef\xbb\xbf \t\r\n")[:3] != b"ISA":
        return ClaimsInput(parse_claims_document(data))
    validation = validate_detailed(data, Options(keep_placed=True))
    report = validation.report
    if report.fatal or not report.interchanges:
        raise RequestError(f"not readable X12: {report.fatal}", field="file")
    sets = [s for s in validation.sets if s.report.map == "837P"]
    if not sets or len(sets) != len(validation.sets):
        raise RequestError("holds transaction sets that are not 837P (005010X222A1)", field="file")
    if not report.all_accepted:
        return ClaimsInput([], rejected=report)
    claims: list[Claim] = []
    for s in sets:
        claims += read_837p(s.placed)
    return ClaimsInput(claims)


def claim_hash(claim: Claim, key: bytes) -> str:
    """The claim's identity in the store: a keyed hash of the billing provider and CLM01."""
    return hash_member_id(f"{claim.billing_npi or ''}|{claim.claim_id}", key)


def _candidates(tx: Tx, claims: Sequence[Claim], key: bytes) -> Candidates:
    by_number: dict[str, list[Authorization]] = {}
    by_member: dict[str, list[Authorization]] = {}
    refs = {r for c in claims for line in c.lines if (r := c.line_reference(line))}
    for ref in refs:
        by_number[ref] = [
            authorization_from_record(a.id, a.tracking_number, a.record, r.payload if r else None)
            for a, r in tx.claims.authorizations_by_number(ref, limit=50)
        ]
    for member in {c.member_id for c in claims}:
        rows = tx.claims.authorizations_for_member(hash_member_id(member, key), limit=500)
        by_member[member] = [
            authorization_from_record(a.id, a.tracking_number, a.record, r.payload) for a, r in rows
        ]
    return Candidates(by_number, by_member)


def _precert_lookup(tx: Tx, rules: PrecertRules, key: bytes) -> PrecertLookup:
    evidence: dict[tuple[str, str | None], tuple[Evidence, ...]] = {}

    def lookup(claim: Claim, line: ClaimLine) -> PrecertDecision:
        cache_key = (claim.member_id, claim.payer_id)
        if cache_key not in evidence:
            evidence[cache_key] = member_evidence(tx, hash_member_id(claim.member_id, key), claim.payer_id)
        service = Service(
            code=line.procedure.code,
            modifiers=line.procedure.modifiers,
            place_of_service=claim.line_place(line),
            service_date=line.service_date.start,
        )
        return decide(rules, claim.payer_id, service, evidence[cache_key])

    return lookup


def check_file(
    config: GatewayConfig, store: Store, claims: Sequence[Claim], *, as_of: date, commit: bool
) -> tuple[list[LineResult], int]:
    """Check every line against the store; with ``commit`` record the units of passing lines."""
    key = verified_member_key(config, store)
    rules = load_rules(config)
    hashes = {c.claim_id: claim_hash(c, key) for c in claims}
    with store.read() as tx:
        candidates = _candidates(tx, claims, key)
        ids = {
            a.id for group in (*candidates.by_number.values(), *candidates.by_member.values()) for a in group
        }
        used = tx.claims.units_used(ids, exclude_claims=hashes.values())
        results = check_claims(claims, candidates, used, as_of=as_of, precert=_precert_lookup(tx, rules, key))
    committed = 0
    if commit:
        with store.begin() as tx:
            for r in results:
                if r.consumption is None:
                    continue
                committed += tx.claims.record_units(
                    authorization_id=r.consumption.authorization_id,
                    service_index=r.consumption.service_index,
                    claim_hash=hashes[r.claim_id],
                    line_number=r.line_number,
                    units=r.consumption.units,
                    procedure_code=r.procedure_code,
                )
    return results, committed


def _print(results: Sequence[LineResult], committed: int, commit: bool) -> None:
    for r in results:
        auth = f" (authorization {r.certification_number or r.authorization})" if r.authorization else ""
        where = f"claim {r.claim_id} line {r.line_number} {r.procedure_code} {r.service_date}"
        print(f"{where}: {r.outcome.upper()}{auth}")
        for m in r.mismatches:
            print(f"  - {m.message}")
        if r.note:
            print(f"  note: {r.note}")
    failed = sum(r.outcome == "fail" for r in results)
    print(f"{len(results)} line(s): {len(results) - failed} passed, {failed} failed")
    if commit:
        print(f"units recorded for {committed} line(s)")


def run(args: argparse.Namespace) -> int:
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{args.file}: cannot be read: {exc.strerror}") from None
    try:
        given = read_claims(data)
    except RequestError as exc:
        print(f"x12gw: {args.file}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if given.rejected is not None:
        print_report(args.file, given.rejected, stream=sys.stderr)
        return EXIT_FAILED
    config = load_config(args.config)
    as_of = args.as_of or datetime.now(UTC).date()
    store = open_store(config, role="operator")
    try:
        results, committed = check_file(config, store, given.claims, as_of=as_of, commit=args.commit)
    finally:
        store.close()
    ok = all(r.outcome != "fail" for r in results)
    if args.json:
        doc = {"ok": ok, "committed": committed, "lines": [to_dict(r) for r in results]}
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print(results, committed, args.commit)
    return EXIT_OK if ok else EXIT_FAILED
