"""What every stage of the run loop needs: configuration, store, payloads, clock, logger, keys."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.runtime.config import GatewayConfig
from gateway.runtime.health import PartnerHealthBoard
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
    # each partner's failures, pause and last remote listing (run-loop memory, not durable)
    health: PartnerHealthBoard = field(default_factory=PartnerHealthBoard)
    # set by SIGTERM/SIGINT: long steps (a big inbox file) stop between two committed batches
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        """Payloads kept in the store (``gateway.store.payloads``) are read from this context's store."""
        if self.payloads.store is None:
            self.payloads.bind(self.store)
