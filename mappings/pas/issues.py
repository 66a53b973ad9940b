"""Problems found in a PAS bundle: a FHIR path and a code, never the value that was wrong."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

# FHIR IssueType codes used here: structure, required, value, not-found, code-invalid, not-supported
IssueCode = Literal[
    "structure",
    "required",
    "value",
    "not-found",
    "code-invalid",
    "not-supported",
    "invalid",
    "login",
    "forbidden",
]


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem with a bundle. ``path`` is a FHIRPath-like location, ``message`` says what is
    expected; neither ever carries the submitted value (it may be PHI)."""

    path: str
    code: IssueCode
    message: str
    severity: Literal["error", "warning"] = "error"


def operation_outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    """The FHIR OperationOutcome resource naming each issue by its path."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": issue.severity,
                "code": issue.code,
                "diagnostics": issue.message,
                "expression": [issue.path],
            }
            for issue in issues
        ],
    }
