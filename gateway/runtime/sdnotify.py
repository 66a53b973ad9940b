"""systemd's notify protocol (``Type=notify``, ``WatchdogSec=``) without a dependency.

The service manager passes a datagram socket in ``NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract
namespace) and, with a watchdog, its period in ``WATCHDOG_USEC``. The run loop says ``READY=1`` once the
store is open and the first cycle ran, ``WATCHDOG=1`` after every cycle and while idle, and ``STOPPING=1``
on the way out; if a stage hangs, the pings stop and systemd restarts the service. Outside systemd
(no ``NOTIFY_SOCKET``) every call does nothing.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Notifier:
    """Where to send notifications (None: not under systemd) and the watchdog period in seconds."""

    address: str | None
    watchdog_seconds: float | None

    @classmethod
    def from_env(cls) -> Notifier:
        address = os.environ.get("NOTIFY_SOCKET") or None
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        period = int(usec) / 1_000_000 if usec.isdigit() and int(usec) > 0 and mine else None
        return cls(address, period)

    def send(self, message: str) -> bool:
        """Send one notification; False when not under systemd or the socket is gone (never raises)."""
        if not self.address:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message.encode("utf-8"), target)
        except OSError:
            return False
        return True

    def ready(self, status: str) -> None:
        self.send(f"READY=1\nSTATUS={status}")

    def watchdog(self) -> None:
        if self.watchdog_seconds is not None:
            self.send("WATCHDOG=1")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def idle_wait(self, stop: threading.Event, seconds: float) -> None:
        """Wait ``seconds`` (or until ``stop``), pinging the watchdog at half its period meanwhile."""
        if self.watchdog_seconds is None:
            stop.wait(seconds)
            return
        slice_ = max(self.watchdog_seconds / 2, 0.05)
        left = seconds
        while left > 0 and not stop.is_set():
            stop.wait(min(slice_, left))
            left -= slice_
            self.watchdog()
