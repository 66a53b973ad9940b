"""Real-time calls' store-and-compute parts go through ``gateway.realtime.slots``: at most two calls
of a process inside at once, every store statement of a call made inside its slot, and a part nested
in another never waiting for a second slot."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from gateway.realtime import slots
from tests.api_support import Api, sample, serving
from tests.test_api import add_client

if TYPE_CHECKING:
    from tests.core_support import CoreRig

pytest_plugins = ["tests.core_fixtures"]

CALLS = 8


def test_every_statement_of_concurrent_api_calls_runs_inside_a_slot_and_two_at_most(rig: CoreRig) -> None:
    """Eight concurrent API eligibility calls: each store statement their call threads run is made
    with a slot held, never with more than ``CALL_SLOTS`` calls inside, and every call is answered 200."""
    ctx = rig.context(rig.server(latency_seconds=0.05))
    key = add_client(ctx, "billing")
    seen: list[tuple[bool, int]] = []
    lock = threading.Lock()

    def on_execute(*_args: Any) -> None:
        if threading.current_thread().name.startswith("core-"):  # the API's call threads
            with lock:
                seen.append((slots.CALLS.held(), slots.CALLS.busy))

    with serving(ctx.config) as port:
        api = Api("127.0.0.1", port)

        def call(n: int) -> int:
            body = sample("270-subscriber") | {"trace_number": f"SL-{n:04d}"}
            return api.call("POST", "/eligibility", body, key=key)[0]

        assert call(0) == 200  # warm: maps, schema, number blocks
        event.listen(Engine, "before_cursor_execute", on_execute)
        try:
            with ThreadPoolExecutor(CALLS) as pool:
                statuses = list(pool.map(call, range(1, CALLS + 1)))
        finally:
            event.remove(Engine, "before_cursor_execute", on_execute)
    assert statuses == [200] * CALLS
    assert len(seen) >= CALLS * 10  # the calls' statements were seen
    assert all(held for held, _ in seen), "a call's statement ran outside its slot"
    assert max(busy for _, busy in seen) <= slots.CALL_SLOTS


def test_a_part_nested_in_another_takes_no_second_slot() -> None:
    """A thread already inside goes straight in again (with one slot, a nested part would otherwise
    wait for itself forever) and holds its slot until the outer part leaves."""
    gate = slots.Slots(1)
    with gate:
        with gate:
            assert gate.busy == 1
        assert gate.held()
        assert gate.busy == 1
    assert not gate.held()
    assert gate.busy == 0


def test_a_third_thread_waits_while_two_are_inside() -> None:
    """With both slots taken by threads still inside, no third one can get in; once one leaves, it can."""
    gate = slots.Slots(2)
    inside, leave = threading.Barrier(3), threading.Event()

    def hold() -> None:
        with gate:
            inside.wait()
            leave.wait()

    threads = [threading.Thread(target=hold) for _ in range(2)]
    for t in threads:
        t.start()
    inside.wait()  # both are inside
    assert gate.busy == 2
    assert gate.free == 0  # no free slot is left
    leave.set()
    for t in threads:
        t.join()
    assert gate.busy == 0
    with gate:  # free again
        assert gate.held()


def test_a_leaving_thread_hands_its_slot_to_the_longest_waiting_one() -> None:
    """Waiters get in first come, first served, each straight from the thread that leaves (``busy``
    never drops in between, so no newcomer can slip in ahead of them)."""
    gate = slots.Slots(1)
    order: list[str] = []
    busy_seen: list[int] = []
    release = {name: threading.Event() for name in ("b", "c")}

    def enter(name: str) -> None:
        with gate:
            order.append(name)
            busy_seen.append(gate.busy)
            release[name].wait()

    gate.__enter__()  # the main thread holds the only slot
    waiters = []
    for name in ("b", "c"):
        t = threading.Thread(target=enter, args=(name,))
        t.start()
        waiters.append(t)
        while gate.waiting < len(waiters):  # in line before the next one starts
            threading.Event().wait(0.001)
    assert gate.busy == 1
    gate.__exit__(None, None, None)  # handed to b
    assert gate.busy == 1
    assert gate.waiting == 1
    assert gate.free == 0
    release["b"].set()
    waiters[0].join()
    release["c"].set()
    waiters[1].join()
    assert order == ["b", "c"]
    assert busy_seen == [1, 1]
    assert (gate.busy, gate.free, gate.waiting) == (0, 1, 0)


def _line_up(gate: slots.Slots, order: list[str], waiters: list[tuple[str, bool]]) -> list[threading.Thread]:
    """Start one thread per (name, ahead) in turn, each in line before the next starts; each records its
    name once inside and leaves at once."""

    def enter(name: str, ahead: bool) -> None:
        with gate.ahead() if ahead else gate:
            order.append(name)

    threads = []
    for name, ahead in waiters:
        t = threading.Thread(target=enter, args=(name, ahead))
        t.start()
        threads.append(t)
        while gate.waiting < len(threads):
            threading.Event().wait(0.001)
    return threads


def test_a_call_recording_its_request_gets_the_slot_before_answers_that_waited_longer() -> None:
    """``ahead`` waiters (calls recording a new request) are served before earlier plain waiters."""
    gate = slots.Slots(1)
    order: list[str] = []
    gate.__enter__()  # the main thread holds the only slot
    threads = _line_up(
        gate, order, [("answer-1", False), ("request-1", True), ("answer-2", False), ("request-2", True)]
    )
    gate.__exit__(None, None, None)
    for t in threads:
        t.join()
    assert order == ["request-1", "request-2", "answer-1", "answer-2"]
    assert (gate.busy, gate.free, gate.waiting) == (0, 1, 0)


def test_a_waiting_answer_gets_a_slot_after_a_streak_of_new_requests() -> None:
    """After ``AHEAD_STREAK`` hand-overs in a row to ``ahead`` waiters, a plain waiter goes next (new
    calls never starve the answers)."""
    gate = slots.Slots(1)
    order: list[str] = []
    requests = [(f"request-{n}", True) for n in range(slots.AHEAD_STREAK + 2)]
    gate.__enter__()
    threads = _line_up(gate, order, [("answer", False), *requests])
    gate.__exit__(None, None, None)
    for t in threads:
        t.join()
    streak = [name for name, _ in requests[: slots.AHEAD_STREAK]]
    assert order == [*streak, "answer", *(name for name, _ in requests[slots.AHEAD_STREAK :])]
    assert (gate.busy, gate.free, gate.waiting) == (0, 1, 0)


def test_ahead_nested_in_a_held_slot_takes_no_second_slot() -> None:
    """``ahead()`` inside a part already holding a slot goes straight in, as a plain nested part does."""
    gate = slots.Slots(1)
    with gate, gate.ahead():
        assert gate.busy == 1
        assert gate.held()
    assert not gate.held()
    assert gate.busy == 0
