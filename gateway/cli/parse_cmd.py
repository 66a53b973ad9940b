"""``x12gw parse FILE [--json]``: the segment stream grouped by interchange, group and transaction set."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from transactions.envelope_reader import read_interchanges
from transactions.segment import Element, Segment, components, repetitions


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("parse", help="show the envelope structure and segments of an X12 file")
    p.add_argument("file", type=Path)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def _element(value: Element) -> Any:
    reps = repetitions(value)
    if len(reps) > 1:
        return [_element(r) for r in reps]
    comps = components(value)
    return list(comps) if len(comps) > 1 else (comps[0] if comps else "")


def _segment(s: Segment) -> dict[str, Any]:
    return {"id": s.tag, "elements": [_element(e) for e in s.elements]}


def run(args: argparse.Namespace) -> int:
    interchanges = read_interchanges(args.file.read_bytes())
    doc: dict[str, Any] = {
        "interchanges": [
            {
                "control_number": ic.control_number,
                "sender": ic.sender[1],
                "receiver": ic.receiver[1],
                "delimiters": {
                    "element": ic.delimiters.element,
                    "repetition": ic.delimiters.repetition,
                    "component": ic.delimiters.component,
                    "segment": ic.delimiters.segment,
                },
                "groups": [
                    {
                        "functional_id": g.functional_id,
                        "control_number": g.control_number,
                        "version": g.version,
                        "transaction_sets": [
                            {
                                "id": t.set_id,
                                "control_number": t.control_number,
                                "segments": [_segment(s) for s in t.segments],
                            }
                            for t in g.transaction_sets
                        ],
                    }
                    for g in ic.groups
                ],
            }
            for ic in interchanges
        ]
    }
    if args.json:
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for ic in doc["interchanges"]:
        print(f"interchange {ic['control_number']} {ic['sender']} -> {ic['receiver']}")
        for g in ic["groups"]:
            print(f"  group {g['functional_id']} {g['control_number']} {g['version']}")
            for t in g["transaction_sets"]:
                print(f"    set {t['id']} {t['control_number']}: {len(t['segments'])} segments")
    return 0
