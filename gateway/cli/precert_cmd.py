"""``x12gw precert check --payer P --code C [--pos POS] [--member M] ...``: does a service need
pre-certification with a payer, and why.

Prints ``required``, ``not required`` or ``unknown`` with the reason: the rule that decided (rules
file: ``--rules``, else ``[precert] rules_file`` of the configuration), or the payer's own answer in
the latest 271 for the member (``--member``: looked up by the member hash in the gateway's store,
never stored or printed). Exit 0 with an answer, 2 on usage or configuration errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

from gateway.errors import ConfigError
from gateway.runtime.config import GatewayConfig, load_config
from gateway.runtime.storeopen import open_store, verified_member_key
from gateway.stages.precert_gate import member_evidence, rules_from_file
from gateway.store import hash_member_id
from policy.precert import Evidence, PrecertDecision, Service, decide
from transactions.jsonform import to_dict


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("precert", help="pre-certification rules: does a service need prior authorization?")
    actions = p.add_subparsers(dest="precert_command", required=True, metavar="ACTION")
    c = actions.add_parser("check", help="required / not required / unknown for one service, with the reason")
    c.add_argument("--payer", required=True, help="payer id (as in the 278's 2010A NM109)")
    c.add_argument("--code", help="CPT/HCPCS procedure code")
    c.add_argument("--modifier", action="append", default=[], help="procedure modifier (repeatable)")
    c.add_argument("--pos", help="place of service code, e.g. 11 office, 22 outpatient hospital")
    c.add_argument("--service-type", help="X12 service type code, e.g. 62 MRI/CAT scan")
    c.add_argument("--category", choices=("AR", "HS", "SC"), help="278 request category (AR admission)")
    c.add_argument(
        "--date", type=date.fromisoformat, help="service date (YYYY-MM-DD): names the retro deadline"
    )
    c.add_argument("--member", help="member id: use the payer's answer in the member's latest 271")
    c.add_argument(
        "--rules", type=Path, help="rules file (default: [precert] rules_file of the configuration)"
    )
    c.add_argument("--config", help="gateway.toml (default: $X12GW_CONFIG or ./gateway.toml)")
    c.add_argument("--json", action="store_true", help="print the decision as JSON")
    c.set_defaults(func=run)


def _config(args: argparse.Namespace) -> GatewayConfig | None:
    """The configuration, needed for --member and when no --rules file is given."""
    if args.rules is not None and args.member is None and args.config is None:
        return None
    return load_config(args.config)


def _evidence(config: GatewayConfig, member_id: str, payer_id: str) -> tuple[Evidence, ...]:
    store = open_store(config, role="operator")
    try:
        key = verified_member_key(config, store)
        with store.read() as tx:
            return member_evidence(tx, hash_member_id(member_id, key), payer_id)
    finally:
        store.close()


def check(args: argparse.Namespace) -> PrecertDecision:
    """The decision for the service the arguments describe."""
    if not (args.code or args.service_type or args.category):
        raise ConfigError("give --code, --service-type or --category")
    config = _config(args)
    rules_path = args.rules if args.rules is not None else (config.precert.rules_file if config else None)
    rules = rules_from_file(rules_path)
    evidence = _evidence(config, args.member, args.payer) if (config and args.member) else ()
    service = Service(
        code=args.code.strip().upper() if args.code else None,
        modifiers=tuple(m.strip().upper() for m in args.modifier),
        service_type=args.service_type,
        category=args.category,
        place_of_service=args.pos,
        service_date=args.date,
    )
    return decide(rules, args.payer, service, evidence)


def run(args: argparse.Namespace) -> int:
    decision = check(args)
    if args.json:
        json.dump(to_dict(decision), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"{decision.label}: {decision.reason}")
    if decision.decision == "required":
        days = decision.retro_authorization_days
        retro = f"up to {days} day(s) after the service" if days else "not accepted by this payer"
        print(f"retro-authorization: {retro}")
        if decision.retro_deadline is not None:
            print(f"last day to ask for a retro-authorization: {decision.retro_deadline}")
    return 0
