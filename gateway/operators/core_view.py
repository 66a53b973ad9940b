"""The HTTP side of CAQH CORE exchanges in ``x12gw log show``: one row per attempt (PayloadID).

Everything comes from the file's state-change details written by ``gateway.realtime.exchange``
(envelope style, mode, PayloadID, HTTP status, error code, timings); no payload, no credentials.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway.operators.formatting import Column, render_table
from gateway.operators.session import Session
from gateway.store import StateChange, Tx

COLUMNS = (
    Column("at (UTC)", "at"),
    Column("file", "file_id", right=True),
    Column("envelope", "envelope"),
    Column("PayloadID", "payload_id"),
    Column("HTTP", "http_status", right=True),
    Column("outcome", "outcome", flexible=True),
    Column("ms", "elapsed_ms", right=True),
)


def exchanges(history: Iterable[StateChange], file_id: int) -> list[dict[str, Any]]:
    """The attempts recorded in one outbound file's history, the last word per PayloadID."""
    attempts: dict[str, dict[str, Any]] = {}
    for change in history:
        d = change.detail or {}
        if d.get("transport") != "core" or "payload_id" not in d:
            continue
        outcome = d.get("error_code") or (
            "answered: " + str(d["response_payload_type"])
            if "http_status" in d
            else "sent, no answer recorded"
        )
        attempts[str(d["payload_id"])] = {
            "at": change.at.isoformat(),
            "file_id": file_id,
            "envelope": f"{d.get('envelope', '')} {d.get('mode', '')}".strip(),
            "payload_id": d["payload_id"],
            "http_status": d.get("http_status"),
            "outcome": outcome,
            "elapsed_ms": d.get("elapsed_ms"),
            "connect_ms": d.get("connect_ms"),
            "response_payload_id": d.get("response_payload_id"),
        }
    return sorted(attempts.values(), key=lambda a: str(a["at"]))


def of_files(tx: Tx, file_ids: Iterable[int]) -> list[dict[str, Any]]:
    """The attempts of several outbound files (a request resent in a new file has more than one)."""
    out: list[dict[str, Any]] = []
    for file_id in sorted(set(file_ids)):
        out += exchanges(tx.audit.history("file", file_id), file_id)
    return out


def render(session: Session, items: list[dict[str, Any]]) -> None:
    """The table under a ``http exchanges (CAQH CORE)`` heading; nothing when there were none."""
    if not items:
        return
    session.write()
    session.write(session.painter.bold("http exchanges (CAQH CORE)"))
    rows = [{**i, "at": str(i["at"])[:19].replace("T", " ")} for i in items]
    session.lines(render_table(rows, COLUMNS, width=session.width, painter=session.painter))
