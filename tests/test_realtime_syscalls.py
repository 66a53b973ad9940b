"""The real-time call path's trimmed system calls keep their guarantees: random values drawn a block at
a time are never handed out twice (threads, a forked child), a CORE POST goes out as one write with
the bytes ``http.client`` sends, credential files are re-checked once their identity is a second
old, and an outbox removed while the gateway runs is made again by the next result written."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import threading
from pathlib import Path

import pytest

from gateway.lifecycle import RequestState
from gateway.realtime.dispatch import send_realtime
from gateway.runtime.randpool import RandomPool
from gateway.transport import core_client
from gateway.transport.core_client import CoreEndpoint
from tests.core_support import CoreRig, drop_request, request_state

pytest_plugins = ["tests.core_fixtures"]


def test_pool_hands_out_each_byte_once_across_threads() -> None:
    """Eight threads drawing 16-byte values from a small pool (refilled many times) never get the
    same value twice, and every value has the length asked for."""
    pool = RandomPool(block=256)
    seen: list[bytes] = []
    lock = threading.Lock()

    def draw() -> None:
        mine = [pool.take(16) for _ in range(500)]
        with lock:
            seen.extend(mine)

    threads = [threading.Thread(target=draw) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 4000
    assert {len(v) for v in seen} == {16}
    assert len(set(seen)) == 4000


def test_pool_value_longer_than_a_block_is_read_on_its_own() -> None:
    """A value longer than the block comes whole (not cut to the block) and differs from the next."""
    pool = RandomPool(block=32)
    first, second = pool.take(100), pool.take(100)
    assert (len(first), len(second)) == (100, 100)
    assert first != second
    assert len(pool.hex(4)) == 8


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_never_reuses_the_parents_pending_bytes() -> None:
    """After a fork the child draws from a block of its own: its next value is not the one the
    parent draws next from the block both had in memory."""
    pool = RandomPool()
    pool.take(16)  # the parent holds a block with bytes left in it
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next value and leave at once
        os.write(write, pool.take(16))
        os._exit(0)
    os.close(write)
    child = os.read(read, 16)
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 16
    assert child != pool.take(16)


def _sent_packets(conn: http.client.HTTPConnection, body: bytes) -> list[bytes]:
    """What ``conn`` writes for one POST, one packet per write (a SOCK_SEQPACKET pair keeps each
    write apart)."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with mine, theirs:
        conn.sock = mine
        conn.request("POST", "/core", body=body, headers={"Content-Type": "multipart/form-data; boundary=x"})
        theirs.setblocking(False)
        packets: list[bytes] = []
        while True:
            try:
                packets.append(theirs.recv(1 << 20))
            except BlockingIOError:
                return packets


@pytest.mark.parametrize("body", [b"--x\r\npayload\r\n--x--\r\n", b""])
def test_core_post_goes_out_in_one_write_with_the_standard_bytes(body: bytes) -> None:
    """The POST's head and body leave in one write, byte for byte what ``http.client`` sends in two
    (or one, for an empty body)."""
    ours = _sent_packets(core_client._OneWrite("payer.example", 443), body)
    stock = _sent_packets(http.client.HTTPSConnection("payer.example", 443), body)
    assert len(ours) == 1
    assert len(stock) == (2 if body else 1)
    assert ours == [b"".join(stock)]


def test_credential_files_are_looked_at_again_once_their_identity_is_a_second_old(tmp_path: Path) -> None:
    """A replaced client certificate changes the pool key (new TLS context, new connections) from
    the first call ``RECHECK_SECONDS`` after the files were last looked at, not before."""
    now = [100.0]
    links = core_client._Links(clock=lambda: now[0])
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text("x")
    endpoint = CoreEndpoint(
        url="https://payer.example/core",
        style="mime",
        partner="acme",
        ca_file=tmp_path / "ca.pem",
        auth="mtls",
        client_cert=tmp_path / "client.pem",
        client_key=tmp_path / "client.key",
    )
    first = links.key(endpoint)
    (tmp_path / "client.pem").write_text("a longer, replaced certificate")
    now[0] += links.RECHECK_SECONDS / 2
    assert links.key(endpoint) == first
    now[0] += links.RECHECK_SECONDS
    replaced = links.key(endpoint)
    assert replaced != first
    assert replaced[3] == (str(tmp_path / "client.pem"), *_identity(tmp_path / "client.pem"))


def _identity(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def test_outbox_removed_while_running_is_made_again_by_the_next_result(rig: CoreRig) -> None:
    """Two real-time answers with the outbox folder removed between them: both are answered and the
    second one's result file is written into the folder made again (as when it was made on every
    write)."""
    server = rig.server()
    ctx = rig.context(server)
    outbox = ctx.config.folders.outbox
    first = drop_request(ctx, "270-subscriber", "OUTBOX-1")
    assert send_realtime(ctx, first, budget_seconds=15.0) is True
    shutil.rmtree(outbox)
    second = drop_request(ctx, "270-subscriber", "OUTBOX-2")
    assert send_realtime(ctx, second, budget_seconds=15.0) is True
    assert request_state(ctx, second) == RequestState.ANSWERED
    with ctx.store.read() as tx:
        tracking = tx.requests.get(second).tracking_number
    written = json.loads((outbox / f"{tracking}.json").read_text())
    assert written["tracking_number"] == tracking
    assert written["state"] == RequestState.ANSWERED
    assert outbox.stat().st_mode & 0o777 == 0o700
