"""Tracking and control numbers for real-time API calls, taken from the store a block at a time.

A real-time call's interchange carries its tracking number (TRN, BHT03) and its ISA13, GS06 and ST02,
so they must be known before it is built; building it (and storing its payload, two syncs) inside the
call's one transaction would hold the store's write lock meanwhile. Instead the process takes a block
of each (``BLOCK`` tracking numbers and ``BLOCK`` of each control number of the partner's
sender/receiver pair, in one committed transaction of their own, as the store hands them out) and
gives them out one call at a time: the interchange is built, validated and stored before the call's
transaction, which only records it. Numbers are never handed out twice (each block is the store's to
give); what is left of a block when the process ends, or the numbers of a call that then records
nothing, is a gap, which X12 and the tracking numbers allow. Numbers of two processes (``serve
--workers``, or ``serve`` and ``run``) interleave: unique, not in sending order.

Blocks are kept per database (its URL and ``instance_id``), so a store opened on another database
never gets numbers of an earlier one.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from gateway.runtime.config import PartnerConfig
from gateway.runtime.context import Context

BLOCK = 64  # calls per block: one commit for this many calls, at most this many numbers lost per restart
# (16 before: a refill, a write transaction of four allocations, was 40 us of every call's CPU)


@dataclass(frozen=True)
class CallNumbers:
    """What one real-time call's interchange is numbered with."""

    tracking: str
    isa: int
    gs: int
    st: int


_BLOCKS: dict[tuple[str, ...], deque[CallNumbers]] = {}
_LOCK = threading.Lock()


def take(ctx: Context, partner: PartnerConfig) -> CallNumbers:
    """The numbers of one call to ``partner``: from this process's block, a new block taken (one
    commit) when it is used up."""
    ident = ctx.config.identity
    pair = (f"{ident.isa_qualifier}:{ident.isa_id}", f"{partner.isa_qualifier}:{partner.isa_id}")
    store = ctx.store
    database = f"{store.engine.url.render_as_string(hide_password=True)}#{store.instance_id}"
    key = (database, store.tracking_prefix, *pair)
    with _LOCK:  # one refill at a time
        left = _BLOCKS.setdefault(key, deque())
        if not left:
            with store.begin() as tx:
                trackings = store.new_tracking_numbers(BLOCK, tx=tx)
                isa = store.allocate_control_numbers(*pair, "ISA13", BLOCK, tx=tx)
                gs = store.allocate_control_numbers(*pair, "GS06", BLOCK, tx=tx)
                st = store.allocate_control_numbers(*pair, "ST02", BLOCK, tx=tx)
            left.extend(CallNumbers(*n) for n in zip(trackings, isa, gs, st, strict=True))
        return left.popleft()


def drop_blocks() -> None:
    """Forget every block (what is left of them becomes a gap), as when the process ends."""
    with _LOCK:
        _BLOCKS.clear()
