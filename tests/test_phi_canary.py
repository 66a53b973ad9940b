"""PHI canaries: the suite's requests carry canary names (CANARYTEST), member ids (ZZM...) and birth
dates; every log line the session produces is kept (tests/conftest.py: this process through the real
redacting formatter, plus the stderr logs of the gateway subprocesses tests start); the last test of
the run fails if any line holds a canary."""

from __future__ import annotations

import json
import logging
import re
from datetime import date
from pathlib import Path

import pytest

from gateway.runtime.filemask import mask_file_name
from gateway.runtime.logsetup import get_logger
from gateway.runtime.runner import open_context
from gateway.stages import intake
from tests.exactly_once import CANARY_BIRTH_DATE
from tests.protection_support import cli, drop, dump, write_config

ROOT = Path(__file__).resolve().parent.parent


def _birth_dates() -> set[date]:
    """Every birth date in the sample requests, plus the crash and fault suites' own canary date."""
    found = {date.fromisoformat(CANARY_BIRTH_DATE)}
    for path in (ROOT / "sample_edi" / "requests").glob("*.json"):
        dates = re.findall(r'"birth_date": "([0-9-]{10})"', path.read_text())
        found |= {date.fromisoformat(d) for d in dates}
    for path in (ROOT / "sample_edi" / "fhir").glob("*.json"):  # the PAS bundles' patients
        found |= {date.fromisoformat(d) for d in re.findall(r'"birthDate": "([0-9-]{10})"', path.read_text())}
    return found


def canary_pattern() -> re.Pattern[str]:
    """Canary last name, member ids, and each canary birth date in the spellings a log could use."""
    dates = [
        form
        for d in sorted(_birth_dates())
        for form in (d.strftime("%Y%m%d"), d.isoformat(), d.strftime("%m/%d/%Y"))
    ]
    fhir_members = [r"\b1122334455\b", r"\b1234567890[12]\b"]  # sample_edi/fhir subscriber/patient ids
    parts = [r"CANARYTEST", r"\bZZM[0-9A-Z]{5,}", *fhir_members, *(re.escape(d) for d in dates)]
    return re.compile("|".join(parts), re.IGNORECASE)


def canaries_in(text: str) -> list[str]:
    """Each log line that holds a canary (the whole line, so the failure shows where it came from)."""
    pattern = canary_pattern()
    return [line for line in text.splitlines() if pattern.search(line)]


def test_scanner_finds_every_kind_of_canary() -> None:
    """The scan catches the canary name, a member id and a birth date in each spelling, and nothing
    in an ordinary line."""
    for line in (
        "eligibility for CanaryTest",
        "member ZZM100000001 not found",
        "born 1970-01-01",
        "DMG*D8*19570329",
        "born 03/29/1957",
    ):
        assert canaries_in(line) == [line], line
    assert canaries_in('{"event": "batch queued", "file": "sim-270-000000001.x12", "requests": 3}') == []


def test_session_capture_writes_redacted_lines(phi_log_dir: Path) -> None:
    """The capture handler is installed: a gateway log event reaches the session file, redacted."""
    handlers = [h for h in logging.getLogger().handlers if getattr(h, "baseFilename", "").endswith(".log")]
    assert handlers, "the session log capture (tests/conftest.py) is not installed"
    get_logger("x12gw.canary").warning("canary probe", member_id="ZZM999999999", probe="phi-canary-probe")
    for h in handlers:
        h.flush()
    text = (phi_log_dir / "pytest-session.log").read_text(encoding="utf-8", errors="replace")
    probes = [json.loads(line) for line in text.splitlines() if "phi-canary-probe" in line]
    assert probes
    assert probes[-1]["member_id"] == "[redacted]"


CANARY_NAMES = ("CANARYTEST_ZZM555555555.json", "ZZM444444444-CANARYTEST-19570329.csv")


def test_canary_file_names_stay_out_of_logs_listings_and_the_database(
    tmp_path: Path, phi_log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files named after a patient (one with a bad field, one unreadable) go through intake and the
    operator listing: no log line, listing or database dump names them; the audited reveal does."""
    monkeypatch.delenv("X12GW_PAYLOAD_KEY", raising=False)
    monkeypatch.delenv("X12GW_MEMBER_HASH_KEY", raising=False)
    config, path = write_config(tmp_path)
    ctx = open_context(config)
    bad = json.loads((ROOT / "sample_edi" / "requests" / "270-subscriber.json").read_text())
    bad["provider"]["npi"] = "12345"  # rejected: the file is quarantined with a reason, and logged
    drop(config.folders.inbox, CANARY_NAMES[0], json.dumps(bad).encode())
    drop(config.folders.inbox, CANARY_NAMES[1], b"not,a,request\n")
    log = get_logger("x12gw")
    try:
        ctx.log = log
        assert intake.intake(ctx) == 2
        with ctx.store.read() as tx:
            states = {f.name: f.state for f in tx.files.query(direction="in")}
    finally:
        ctx.store.close()
    assert set(states) == set(CANARY_NAMES)
    assert set(states.values()) == {"quarantined"}
    assert canaries_in(dump(config.folders.state / "gateway.db")) == []
    listing = cli(["log", "list", "--config", str(path)], phi_log_dir, "canary-list")
    assert listing.returncode == 0, listing.stderr
    assert canaries_in(listing.stdout) == []
    assert mask_file_name(CANARY_NAMES[0]) in listing.stdout
    shown = cli(["log", "list", "--reveal", "--json", "--config", str(path)], tmp_path, "canary-reveal")
    assert CANARY_NAMES[0] in shown.stdout  # kept out of the scanned logs: a reveal shows PHI by design
    audit = cli(["audit", "list", "--json", "--config", str(path)], phi_log_dir, "canary-audit")
    assert '"log list"' in audit.stdout


@pytest.mark.run_last
def test_no_log_line_of_the_whole_run_holds_a_canary(phi_log_dir: Path) -> None:
    """Runs after every other test: no line any of them logged names a canary patient."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    leaks: list[str] = []
    files = sorted(phi_log_dir.glob("*.log"))
    assert files, "no session logs were captured"
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        leaks += [f"{path.name}: {line[:400]}" for line in canaries_in(text)]
    assert not leaks, f"{len(leaks)} log line(s) hold PHI canaries:\n" + "\n".join(leaks[:20])
