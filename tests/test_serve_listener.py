"""``serve --workers``: the listening socket handed to the worker processes gives TCP_NODELAY connections."""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
from typing import Any

import uvicorn

from gateway.cli.serve_cmd import tcp_listener


def _nodelay_of_accepted(listener: socket.socket) -> int:
    """Serve one connection on ``listener`` with asyncio and return its TCP_NODELAY setting."""

    async def main() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: Any) -> None:
                sock = transport.get_extra_info("socket")
                seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
        port = listener.getsockname()[1]
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            return await asyncio.wait_for(seen, 10)
        finally:
            writer.close()
            server.close()

    return asyncio.run(main())


def _uvicorn_socket() -> socket.socket:
    return uvicorn.Config("x:y", host="127.0.0.1", port=0).bind_socket()


def test_uvicorn_socket_leaves_nagle_on_and_ours_turns_it_off() -> None:
    """uvicorn's bound socket (proto 0) gets no TCP_NODELAY from asyncio; through tcp_listener it does."""
    assert _nodelay_of_accepted(_uvicorn_socket()) == 0
    assert _nodelay_of_accepted(tcp_listener(_uvicorn_socket())) != 0


def _report_proto(sock: socket.socket, out: Any) -> None:
    out.put(sock.proto)
    sock.close()


def test_worker_process_receives_the_tcp_listener() -> None:
    """A spawned worker (as uvicorn starts them) gets the listener with proto IPPROTO_TCP kept."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    listener = tcp_listener(_uvicorn_socket())
    child = ctx.Process(target=_report_proto, args=(listener, out))
    child.start()
    try:
        assert out.get(timeout=60) == socket.IPPROTO_TCP
    finally:
        child.join(30)
        listener.close()


def test_unix_and_tcp_sockets_are_returned_as_they_are() -> None:
    """A Unix socket, or one already marked TCP, comes back as the same object."""
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        assert tcp_listener(unix) is unix
        assert tcp_listener(tcp) is tcp
    finally:
        unix.close()
        tcp.close()
