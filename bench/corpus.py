"""Deterministic benchmark inputs: large 270 and 271 batches built from the project's own builders and
the public TR3 examples, written to a scratch folder."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from transactions.build270 import VERSION_270, build_270_body
from transactions.envelope_reader import read_interchanges
from transactions.envelope_writer import GroupHeader, InterchangeHeader, TransactionBody, build_interchange
from transactions.models import DateRange, EligibilityInquiry, Payer, Person, Provider
from transactions.segment import Delimiters
from transactions.writer import serialize

ROOT = Path(__file__).resolve().parent.parent
WHEN = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
PUBLIC_271 = ROOT / "tests" / "public_x12" / "271" / "LinuxForHealth-x12__subscriber-health-benefit-check.271"


def inquiry(n: int) -> EligibilityInquiry:
    return EligibilityInquiry(
        trace_number=f"BENCH-{n:08d}",
        payer=Payer("ACME HEALTH PLAN", "ACME01"),
        provider=Provider("RIVERSIDE IMAGING CENTER", "1234567893"),
        subscriber=Person("CANARYTEST", f"M{n:06d}", f"ZZM{n:09d}", birth_date=date(1970, 1, 1), gender="F"),
        service_types=("30", "62", "2"),
        service_date=DateRange(date(2026, 12, 1)),
    )


def batch_270(target_bytes: int) -> bytes:
    """One interchange of 270 sets, as many as fit ``target_bytes``."""
    one = len(serialize(build_270_body(inquiry(0), WHEN), Delimiters(), newline="\n")) + 60
    count = max(1, target_bytes // one)
    sets = [
        TransactionBody("270", i + 1, VERSION_270, build_270_body(inquiry(i), WHEN)) for i in range(count)
    ]
    return _envelope("HS", VERSION_270, sets)


def batch_271(target_bytes: int) -> bytes:
    """One interchange repeating the public TR3-style 271 set with fresh ST control numbers."""
    ic = read_interchanges(PUBLIC_271.read_bytes())[0]
    body = next(ic.transaction_sets()).body
    size = len(serialize(body, ic.delimiters, newline="\n")) + 60
    count = max(1, target_bytes // size)
    sets = [TransactionBody("271", i + 1, "005010X279A1", body) for i in range(count)]
    return _envelope("HB", "005010X279A1", sets, ic.delimiters)


def _envelope(fid: str, version: str, sets: list[TransactionBody], d: Delimiters | None = None) -> bytes:
    header = InterchangeHeader("ZZ", "BENCHSENDER", "ZZ", "BENCHRECEIVER", 1, WHEN)
    group = GroupHeader(fid, "BENCHSENDER", "BENCHRECEIVER", 1, version, WHEN)
    return build_interchange(header, [(group, sets)], d or Delimiters(), newline="\n")


SCRATCH = Path(tempfile.gettempdir()) / "x12gw-bench"


def scratch_file(name: str, make: Callable[[int], bytes], mb: float) -> Path:
    """A generated benchmark input, made once and reused by later runs."""
    SCRATCH.mkdir(exist_ok=True)
    path = SCRATCH / f"{name}-{mb:g}mb.x12"
    if not path.exists():
        path.write_bytes(make(int(mb * 1e6)))
    return path
