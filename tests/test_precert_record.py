"""A 278 answered locally by the pre-cert gate is stored as the payer's record type (an
AuthorizationRecord serialised like any mapped 278 response), not a hand-shaped dict."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.runtime.config import parse_config
from gateway.runtime.context import Context
from gateway.runtime.runner import open_context
from gateway.stages import intake
from mappings.records import AuthorizationRecord, ServiceDecision, blank_record
from tests.test_precert import KEY, OFFICE, RULES_FILE, drop_278, minimal_config


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    """A real context with the gate on and the shipped rules."""
    monkeypatch.setenv("X12GW_MEMBER_HASH_KEY", KEY)
    data = minimal_config(tmp_path, rules_file=str(RULES_FILE), answer_not_required=True)
    context = open_context(parse_config(data, tmp_path))
    yield context
    context.store.close()


def _names(cls: Any) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_local_answer_is_an_authorization_record_in_its_json_form(ctx: Context) -> None:
    """The stored record has exactly the record type's fields (lines: ServiceDecision's), status and
    reason set, no PHI fields filled, and the basis of the decision kept in the messages."""
    drop_278(ctx, "office", trace_number="AU-OFFICE", lines=OFFICE)
    intake.intake(ctx)
    with ctx.store.read() as tx:
        (req,) = tx.requests.query()
        auth = tx.results.get_authorization(req.tracking_number)
    assert auth is not None
    record: dict[str, Any] = auth.record
    assert set(record) == _names(AuthorizationRecord)
    assert (record["status"], record["trace_number"], record["payer_id"]) == (
        "not_required",
        req.tracking_number,
        "ACME01",
    )
    assert "no rule matches" in record["reason"]
    assert record["messages"] == ["basis: otherwise"]  # no rule matched: the payer set's otherwise
    for phi in ("member_id", "subscriber_last_name", "subscriber_first_name", "patient_last_name"):
        assert record[phi] is None
    (line,) = record["services"]
    assert set(line) == _names(ServiceDecision)
    assert (line["procedure_code"], line["status"]) == ("99213", "not_required")
    assert line["reason"]


def test_blank_record_fills_the_rest_and_refuses_unknown_fields() -> None:
    """Fields not given are None (tuples empty); a misspelt field is an error, not a silent drop."""
    record = blank_record(AuthorizationRecord, status="not_required")
    assert (record.status, record.certification_number, record.services, record.messages) == (
        "not_required",
        None,
        (),
        (),
    )
    with pytest.raises(TypeError, match="statuss"):
        blank_record(AuthorizationRecord, statuss="x")
