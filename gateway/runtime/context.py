"""What every stage of the run loop needs: configuration, store, payloads, clock, logger, keys."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.runtime.config import GatewayConfig
from gateway.store import Store
from gateway.store.payloads import PayloadStore


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    config: GatewayConfig
    store: Store
    payloads: PayloadStore
    member_key: bytes
    log: Any
    node_id: str
    clock: Callable[[], datetime] = utc_now
    # partner name -> consecutive failures / paused-until time (run-loop memory, not durable)
    failures: dict[str, int] = field(default_factory=dict)
    paused_until: dict[str, datetime] = field(default_factory=dict)
    # partner name -> remote file name -> (size, mtime) at the previous listing (see exchange)
    remote_seen: dict[str, dict[str, tuple[int, int | None]]] = field(default_factory=dict)
