"""The request side of one real-time API call, its CPU measured alone: recording the call (the API body,
the request, its 270 built, checked and queued with its first attempt started: ``apirecord.submit``
with ``queue_now``) and the CORE POST up to the reply read (the envelope built, sent, the answer read
and checked), each timed by the calling thread's CPU clock, one call at a time.

The payer simulator (mutual TLS, MIME by default, no latency) runs in its own process; the store is
SQLite in a temporary folder (``TMPDIR=/dev/shm`` for tmpfs). ``--full`` also stores each answer
(``send_realtime(inline=True)``, what the API does) and times it apart.

    python bench/bench_request_side.py [--calls 2000] [--envelope mime|soap] [--full] [--profile FILE]

Prints microseconds of thread CPU per call (median and mean of ``--rounds`` rounds of ``--calls``
calls each) for each phase.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_api import _simulator, config_text, request_body
from gateway.realtime import exchange
from gateway.realtime.dispatch import queue_now, send_realtime
from gateway.runtime.config import load_config
from gateway.runtime.runner import open_context
from gateway.store import lockstats
from gateway.web import apiauth, apirecord
from transactions.requests_json import request_from_obj

PARTNER = "core-payer"


def _send(ctx: Any, attempt: exchange.Attempt) -> None:
    """The CORE POST of a started attempt up to the reply read and checked (what ``_post_attempt``
    does before the answer is handed on)."""
    partner = ctx.config.partner(PARTNER)
    if hasattr(exchange, "attempt_reply"):
        reply = exchange.attempt_reply(ctx, partner, attempt, None)
    else:  # the code before ``attempt_reply`` was split out of ``_post_attempt`` (b888eb4)
        reply = _old_reply(ctx, partner, attempt)
    assert reply.status == 200  # noqa: S101 - a bench of the happy path


def _old_reply(ctx: Any, partner: Any, attempt: exchange.Attempt) -> Any:
    """``_post_attempt``'s lines before the answer is handled, as they were at b888eb4."""
    from gateway.transport.core_client import post  # noqa: PLC0415
    from gateway.transport.core_envelope import (  # noqa: PLC0415
        ELEMENTS,
        PAYLOAD_TYPES,
        CoreMessage,
        sealed,
        timestamp,
    )

    core = partner.core
    message = sealed(
        CoreMessage(
            payload_type=PAYLOAD_TYPES.get(attempt.kind, PAYLOAD_TYPES["270"]),
            processing_mode="RealTime",
            payload_id=attempt.detail["payload_id"],
            timestamp=timestamp(ctx.clock()),
            sender_id=core.sender_id,
            receiver_id=core.receiver_id,
            payload=ctx.payloads.get(attempt.row.sha256),
        )
    )
    return post(exchange.endpoint(partner), message, ELEMENTS["realtime_request"], timeout=None)


def run(  # noqa: PLR0915 - one bench
    calls: int, rounds: int, envelope: str, *, full: bool, profile: str | None, locks: bool = True
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        stats = base / "lock-stats.txt"
        if locks:
            os.environ[lockstats.ENV] = str(stats)
        spawn = mp.get_context("spawn")
        urls, stop = spawn.Queue(), spawn.Event()
        sim = spawn.Process(target=_simulator, args=(str(base / "pki"), 0.0, urls, stop))
        sim.start()
        try:
            cfg = base / "gateway.toml"
            cfg.write_text(config_text(base, urls.get(timeout=60), envelope))
            os.environ.setdefault("X12GW_MEMBER_HASH_KEY", "bench-api-key-0123456789abcdef")
            ctx = open_context(load_config(cfg))
            client, _ = apiauth.add_client(ctx.store, "bench", ("eligibility:write",))
            partner = ctx.config.partner(PARTNER)
            phases: dict[str, list[float]] = {"record": [], "post": [], "answer": []}
            counter = iter(range(10**9))

            def one(clock: dict[str, float]) -> None:
                n = next(counter)
                body = request_body(n)
                obj = json.loads(body)
                req = request_from_obj({**obj, "type": "270"})
                t0 = time.thread_time()
                sub = apirecord.submit(
                    ctx,
                    client,
                    body,
                    req,
                    PARTNER,
                    idempotency_key=None,
                    budget=20.0,
                    queue=queue_now(ctx, partner),
                )
                t1 = time.thread_time()
                assert sub.started is not None  # noqa: S101 - a real-time partner's call is queued
                if full:
                    ok = send_realtime(
                        ctx,
                        sub.request_id or 0,
                        budget_seconds=20.0,
                        new_for=PARTNER,
                        tracking=sub.tracking_number,
                        started=sub.started,
                        inline=True,
                    )
                    assert ok  # noqa: S101
                    clock["answer"] += time.thread_time() - t1
                else:
                    _send(ctx, sub.started)
                    clock["post"] += time.thread_time() - t1
                clock["record"] += t1 - t0

            def timed_round(work: Callable[[dict[str, float]], None]) -> None:
                clock = {"record": 0.0, "post": 0.0, "answer": 0.0}
                for _ in range(calls):
                    work(clock)
                for name, total in clock.items():
                    phases[name].append(total / calls * 1e6)

            for _ in range(50):  # warm-up: maps, connections, number blocks
                one({"record": 0.0, "post": 0.0, "answer": 0.0})
            offset = stats.stat().st_size if stats.exists() else 0
            prof = cProfile.Profile(time.thread_time) if profile else None
            for _ in range(rounds):
                if prof is not None:
                    prof.enable()
                timed_round(one)
                if prof is not None:
                    prof.disable()
            if prof is not None and profile:
                prof.dump_stats(profile)
            held = lockstats.read(str(stats), offset) if locks else None
            ctx.store.close()
        finally:
            stop.set()
            urls.get(timeout=60)
            sim.join(timeout=30)
    out: dict[str, Any] = {"calls": calls, "rounds": rounds, "envelope": envelope}
    done = calls * rounds
    if held is not None:
        out["writer_lock_per_call"] = {  # every write transaction of the timed calls (recording, answers)
            "transactions": round(held.transactions / done, 3),
            "statements": round(held.statements / done, 3),
            "held_cpu_us": round(held.cpu_ms / done * 1000, 1),
            "held_wall_us": round(held.held_ms / done * 1000, 1),
        }
    for name, values in phases.items():
        if any(values):
            out[f"{name}_us"] = {
                "median": round(statistics.median(values), 1),
                "mean": round(statistics.fmean(values), 1),
                "rounds": [round(v, 1) for v in values],
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--envelope", choices=("mime", "soap"), default="mime")
    parser.add_argument("--full", action="store_true", help="also store each answer (send_realtime)")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the timed rounds into FILE")
    parser.add_argument("--no-lock-stats", action="store_true", help="leave the writer lock unmeasured")
    args = parser.parse_args()
    print(
        json.dumps(
            run(
                args.calls,
                args.rounds,
                args.envelope,
                full=args.full,
                profile=args.profile,
                locks=not args.no_lock_stats,
            ),
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
