"""A hostile or slow clearinghouse cannot take the machine or hold up the gateway (issue 19, "resource
caps for partners"): a 10,000-file listing is read only in part and taken a capped number of files per
cycle; a 1 GB file is refused with a reason without being downloaded; a trickling server is cut off at
the partner's time budget; and while one partner trickles, intake and a second, healthy partner go on.
The hostile servers are in-process paramiko servers whose files are served lazily, never stored."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from gateway.errors import TransferError
from gateway.runtime.context import Context
from gateway.runtime.nodes import acquire_lease
from gateway.runtime.runner import Gateway, wait_until
from gateway.stages import exchange, pipeline
from gateway.stages.base import Cycle
from gateway.transport.sftp import SftpClient
from payersim.sftp_server import FaultContext, SftpFaults, SftpServer
from tests.e2e_harness import REQUESTS
from tests.remote_support import (
    Reach,
    Virtual,
    VirtualServer,
    inbound_files,
    make_context,
    partner_section,
    put_remote,
)
from tests.sftp_support import write_private_key
from tests.test_precert import KEY

GIGABYTE = 1_000_000_000


@pytest.fixture(autouse=True)
def _member_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X12GW_MEMBER_HASH_KEY", KEY)


@pytest.fixture
def client_key(tmp_path: Path) -> Path:
    return write_private_key(tmp_path / "client")


@pytest.fixture
def contexts() -> Iterator[list[Context]]:
    opened: list[Context] = []
    yield opened
    for ctx in opened:
        ctx.store.close()


def _hostile(tmp_path: Path, client_key: Path, virtual: Virtual) -> VirtualServer:
    root = tmp_path / "hostile-root"
    (root / "in").mkdir(parents=True)
    (root / "out").mkdir()
    return VirtualServer(root, tmp_path, client_key, virtual)


def _context(
    tmp_path: Path, contexts: list[Context], reach: Reach, *others: dict[str, Any], **extra: Any
) -> Context:
    ctx = make_context(tmp_path / "gw", [partner_section(reach, "/out", "/in", **extra), *others])
    contexts.append(ctx)
    return ctx


def test_a_listing_of_ten_thousand_files_is_read_in_part_and_taken_a_few_per_cycle(
    tmp_path: Path, client_key: Path, contexts: list[Context]
) -> None:
    """10,000 remote files: one listing reads at most ten cycles' worth of entries, and a cycle takes
    at most max_files_per_cycle of them (deleting only those)."""
    virtual = Virtual("/out", {f"r{i:05d}.x12": 100 for i in range(10_000)})
    with _hostile(tmp_path, client_key, virtual) as server:
        ctx = _context(tmp_path, contexts, server.reach(client_key), max_files_per_cycle=50)
        (partner,) = ctx.config.partners
        cap = exchange.listing_cap(partner)
        assert cap == 1000
        exchange.exchange(ctx, partner)  # the first listing: nothing is complete yet
        with ctx.store.read() as tx:
            assert len(tx.listings.last("acme")) == cap, "the listing was read in part"
        assert exchange.exchange(ctx, partner) == (0, 50)
        assert len(inbound_files(ctx)) == 50
        assert len(virtual.removed) == 50
        assert exchange.exchange(ctx, partner) == (0, 50)
        assert len(virtual.removed) == 100
        assert ctx.health.of("acme").failures == 0


def test_the_per_cycle_byte_budget_leaves_the_rest_for_the_next_cycle(
    tmp_path: Path, client_key: Path, contexts: list[Context]
) -> None:
    """Files of 400 kB against a budget of 1 MB per cycle: two taken per cycle (the first file of a
    cycle always fits), the rest waits."""
    virtual = Virtual("/out", {f"r{i}.x12": 400_000 for i in range(5)})
    with _hostile(tmp_path, client_key, virtual) as server:
        ctx = _context(tmp_path, contexts, server.reach(client_key), max_bytes_per_cycle=1_000_000)
        (partner,) = ctx.config.partners
        exchange.exchange(ctx, partner)
        assert exchange.exchange(ctx, partner) == (0, 2)
        assert exchange.exchange(ctx, partner) == (0, 2)
        assert len(virtual.removed) == 4
        assert len(inbound_files(ctx)) == 4


def test_a_one_gigabyte_file_is_refused_with_a_reason_without_being_downloaded(
    tmp_path: Path, client_key: Path, contexts: list[Context]
) -> None:
    """A 1 GB response: refused by its listed size (nothing read), a reason file in quarantine,
    logged once, left on the server; the small file beside it is taken; the partner is not failing."""
    virtual = Virtual("/out", {"huge.x12": GIGABYTE, "small.x12": 50})
    with _hostile(tmp_path, client_key, virtual) as server:
        ctx = _context(tmp_path, contexts, server.reach(client_key))
        (partner,) = ctx.config.partners
        for _ in range(3):
            exchange.exchange(ctx, partner)
        assert virtual.served == 50, "only the small file was read"
        assert inbound_files(ctx) == [b"Z" * 50]
        assert "huge.x12" in virtual.files, "a refused file is left for the partner"
        reasons = sorted(ctx.config.folders.quarantine.glob("remote-acme-*.reason.json"))
        assert len(reasons) == 1, "refused once, not every cycle"
        doc = json.loads(reasons[0].read_text())
        assert (doc["file"], doc["size"]) == ("huge.x12", GIGABYTE)
        assert "max_file_bytes" in doc["reason"]
        assert ctx.health.of("acme").failures == 0


def test_a_file_larger_than_the_limit_by_its_stat_is_refused_before_reading(
    tmp_path: Path, client_key: Path
) -> None:
    """The limit also holds in the client itself (a server whose listing and stat disagree): the
    transfer is refused after the stat, with nothing read."""
    virtual = Virtual("/out", {"huge.x12": GIGABYTE})
    with _hostile(tmp_path, client_key, virtual) as server:
        reach = server.reach(client_key)
        endpoint = server.endpoint(key_file=reach.key_file)
        from gateway.errors import RemoteFileRefusedError  # noqa: PLC0415

        staging = tmp_path / "staging"
        staging.mkdir()
        with SftpClient(endpoint) as client, pytest.raises(RemoteFileRefusedError, match="limit"):
            client.fetch("/out", "huge.x12", staging, max_bytes=1_000_000)
        assert virtual.served == 0
        assert list(staging.iterdir()) == []


def test_a_trickling_server_is_cut_off_at_the_time_budget(
    tmp_path: Path, client_key: Path, contexts: list[Context]
) -> None:
    """Each read answered after half a second: the download stops once the partner's seconds per
    cycle are spent (a partner failure, retried later), long before the file is through."""
    size = 8_000_000
    virtual = Virtual("/out", {"slow.x12": size}, read_delay=0.5)
    with _hostile(tmp_path, client_key, virtual) as server:
        ctx = _context(tmp_path, contexts, server.reach(client_key), max_seconds_per_cycle=1.5)
        (partner,) = ctx.config.partners
        exchange.exchange(ctx, partner)
        assert exchange.exchange(ctx, partner) == (0, 0)
        health = ctx.health.of("acme")
        assert health.failures == 1
        assert health.paused_until is None, "one slow cycle does not pause the partner"
        assert virtual.served < size // 4
        assert inbound_files(ctx) == []


def test_intake_and_a_healthy_partner_go_on_while_another_partner_trickles(
    tmp_path: Path, client_key: Path, contexts: list[Context]
) -> None:
    """The run loop with a trickling partner (acme) and a healthy one (beta): beta's response is
    downloaded and an inbox file is taken while acme's exchange is still running; a stop ends it."""
    size = 50_000_000
    virtual = Virtual("/out", {"slow.x12": size}, read_delay=0.5)
    healthy_root = tmp_path / "healthy-root"
    (healthy_root / "in").mkdir(parents=True)
    (healthy_root / "out").mkdir()
    public = Path(f"{client_key}.pub").read_text().strip()
    host_key = paramiko.PKey.from_path(write_private_key(tmp_path / "healthy_host"))
    with (
        _hostile(tmp_path, client_key, virtual) as slow,
        SftpServer(healthy_root, host_key, authorized_keys=[public]) as healthy,
    ):
        reach = Reach(healthy.host, healthy.port, healthy.username, client_key, healthy.host_key_line)
        beta = {"name": "beta", "isa_id": "BETAID", "payers": ["BETA01"]}
        beta |= partner_section(reach, "/out", "/in")
        ctx = _context(tmp_path, contexts, slow.reach(client_key), beta, poll_seconds=0.2)
        gateway = Gateway(ctx)
        (acme_stage,) = [
            s for s in gateway.stages if isinstance(s, pipeline.Exchange) and s.partner.name == "acme"
        ]
        runner = threading.Thread(
            target=gateway.run, kwargs={"interval": 0.2}, name="gateway-run", daemon=True
        )
        runner.start()
        try:
            assert wait_until(lambda: virtual.served > 0, timeout=60), "acme's download began"
            put_remote(healthy_root / "out" / "271.x12", b"ISA*healthy response**~", 1_767_000_000)
            inbox = ctx.config.folders.inbox
            (inbox / "270.json").write_bytes((REQUESTS / "270-subscriber.json").read_bytes())

            def progressed() -> bool:
                with ctx.store.read() as tx:
                    requests = tx.requests.query(limit=10)
                return bool(requests) and inbound_files(ctx, "beta") == [b"ISA*healthy response**~"]

            # progress, not wall time: a generous bound only for a loop that never gets there
            assert wait_until(progressed, timeout=120), "intake or beta was held up by acme"
            assert acme_stage.busy(), "acme's exchange was still running all along"
            assert virtual.served < size
        finally:
            gateway.stop.set()
            runner.join(60)
        assert not runner.is_alive(), "the run loop stopped"
        assert not acme_stage.busy(), "the stop ended acme's exchange"


def test_a_background_exchange_wakes_the_loop_only_when_it_moved_files(
    tmp_path: Path, client_key: Path, contexts: list[Context]
) -> None:
    """An idle exchange ends without waking the run loop (no polling the partner in a tight loop);
    one that downloaded a file wakes it, and the next cycle collects its counts."""
    virtual = Virtual("/out", {"small.x12": 20})
    with _hostile(tmp_path, client_key, virtual) as server:
        ctx = _context(tmp_path, contexts, server.reach(client_key))
        stop, wake = threading.Event(), threading.Event()
        stage = pipeline.Exchange(ctx.config.partners[0])
        stage.run_in_background(stop, wake)
        stage(ctx, Cycle())  # the first listing: nothing to take yet
        stage.join(30)
        assert not wake.is_set()
        stage(ctx, Cycle())  # collects the idle exchange, starts the next
        stage.join(30)
        assert wake.is_set()
        cycle = Cycle()
        stage(ctx, cycle)
        stage.join(30)
        assert (cycle.summary.downloaded, cycle.summary.errors) == (1, 0)


class _SlowWrites(SftpFaults):
    """Every write request is answered after a pause: a partner that takes our data at a trickle."""

    def __init__(self) -> None:
        self.written = 0

    def before(self, ctx: FaultContext) -> int | None:
        if ctx.op == "write":
            ctx.session.stall(0.3)
            self.written += ctx.length
        return None


def test_an_upload_to_a_trickling_server_stops_at_the_deadline(tmp_path: Path, client_key: Path) -> None:
    """Uploads keep to the exchange's time budget too: past the deadline the transfer stops with a
    retryable error (tried again next cycle), long before the file is through, and nothing is renamed."""
    root = tmp_path / "root"
    (root / "in").mkdir(parents=True)
    faults = _SlowWrites()
    host_key = paramiko.PKey.from_path(write_private_key(tmp_path / "host"))
    public = Path(f"{client_key}.pub").read_text().strip()
    local = tmp_path / "batch.x12"
    size = 40_000_000  # far more than the SSH channel window (2 MB) that pipelined writes fill at once
    local.write_bytes(b"U" * size)
    with SftpServer(root, host_key, authorized_keys=[public], faults=faults) as server:
        endpoint = server.endpoint(key_file=client_key)
        with SftpClient(endpoint) as client, pytest.raises(TransferError, match="time budget") as failure:
            client.upload(local, "/in", "batch.x12", deadline=time.monotonic() + 1.0)
        assert failure.value.retryable
        assert not failure.value.local
    assert faults.written < size // 4
    assert not (root / "in" / "batch.x12").exists()


def test_a_stuck_background_exchange_stops_holding_the_partner_lease(
    tmp_path: Path, client_key: Path, contexts: list[Context], caplog: pytest.LogCaptureFixture
) -> None:
    """An exchange thread still running long past its budget plus timeouts: the stage no longer
    renews the partner's lease (another node may take the partner over) and says so once."""
    virtual = Virtual("/out", {})
    with _hostile(tmp_path, client_key, virtual) as server:
        ctx = _context(tmp_path, contexts, server.reach(client_key))
        stage = pipeline.Exchange(ctx.config.partners[0])
        stage.run_in_background(threading.Event(), threading.Event())
        release = threading.Event()
        stuck = threading.Thread(target=release.wait, name="stuck-exchange", daemon=True)
        stuck.start()
        stage._worker = stuck  # a real thread that does not end, started long ago
        stage._started = time.monotonic() - 10_000
        try:
            with caplog.at_level(logging.ERROR, logger="x12gw"):
                stage(ctx, Cycle())
                stage(ctx, Cycle())
            overran = [r for r in caplog.records if "overran its time budget" in r.getMessage()]
            assert len(overran) == 1
            other = acquire_lease(ctx.store, "partner:acme", "other-node", 60, ctx.clock())
            assert other, "this node did not take or renew the partner's lease"
        finally:
            release.set()
            stuck.join()
