"""One operator command's view of the gateway: configuration, store (read transactions), payloads,
the PHI policy (masked unless ``--reveal``), the audit trail of reveals, and where output goes.

The store is opened the same way the run loop opens it (``config.database_url()``), but every query
runs in ``Store.read()`` transactions, which never block the run loop. A reveal is written to the
store's ``phi_audit`` table *before* anything is shown, so a PHI display without an audit entry
cannot happen (if the audit write fails, the command fails).
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from gateway.errors import ConfigError
from gateway.operators.formatting import Painter, escape_controls, terminal_width, wants_colour
from gateway.operators.masking import Phi
from gateway.runtime.config import GatewayConfig, load_config
from gateway.runtime.filemask import set_mask_key
from gateway.runtime.storeopen import open_store, verified_member_key
from gateway.store import Store
from gateway.store.payloads import PayloadStore
from transactions.errors import X12GatewayError

Clock = Callable[[], datetime]
MAX_AUDIT_ITEMS = 1000


def utc_now() -> datetime:
    return datetime.now(UTC)


def os_user() -> str:
    """Who is at the keyboard, by the process's real user id (not by environment variables, which the
    user can set to anything); ``sudo`` is noted as ``root (via NAME)``."""
    try:
        import pwd  # noqa: PLC0415 - POSIX only

        name = pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        name = getpass.getuser()
    via = os.environ.get("SUDO_USER")
    return f"{name} (via {via})" if via and via != name else name


@dataclass
class Session:
    """Everything an operator command needs; close it (or use :func:`open_session`)."""

    config: GatewayConfig
    store: Store
    reveal: bool = False
    json: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)
    clock: Clock = utc_now
    actor: str | None = None  # who acts, when not the OS user at a terminal (e.g. "console:alice")
    _payloads: PayloadStore | None = None

    @property
    def phi(self) -> Phi:
        return Phi(self.reveal)

    @property
    def painter(self) -> Painter:
        return Painter(wants_colour(self.out) and not self.json)

    @property
    def width(self) -> int:
        return terminal_width(self.out)

    @property
    def payloads(self) -> PayloadStore:
        if self._payloads is None:
            self._payloads = PayloadStore(self.config.folders.payloads, self.store)
        return self._payloads

    @property
    def our_id(self) -> str:
        """Our ISA sender as the store records it (``qualifier:id``)."""
        ident = self.config.identity
        return f"{ident.isa_qualifier}:{ident.isa_id}"

    def payload(self, sha256: str, payload_path: str | None = None) -> bytes | None:
        """A file's stored bytes (a payload file or kept in the store), or None when they are gone
        (retention, a moved folder)."""
        return self.payloads.find(sha256, payload_path)

    @property
    def who(self) -> str:
        """Who is recorded as acting: the console user, else the OS user."""
        return self.actor or os_user()

    def member_key(self) -> bytes:
        """The member-hash key, refused (clear message) when it is not the key the store was written with."""
        key = verified_member_key(self.config, self.store)
        set_mask_key(key)
        return key

    def reference_key(self) -> bytes | None:
        """The member-hash key for finding client references, or None when none is configured yet (a
        key that is not the store's is still refused, as for every search)."""
        try:
            return self.member_key()
        except ConfigError:
            return None

    def audit_reveal(self, action: str, subject: str, detail: Mapping[str, Any] | None = None) -> None:
        """Record that PHI is about to be shown (only when ``--reveal`` was given)."""
        if not self.reveal:
            return
        with self.store.begin() as tx:
            tx.audit.record_reveal(os_user=self.who, action=action, subject=subject[:255], detail=detail)

    def write(self, text: str = "") -> None:
        """The one way human-facing text leaves the operators' commands: control characters in it
        (from file names, partners' values) are spelled out, only our own colours kept."""
        self.out.write(escape_controls(text, keep_colours=self.painter.enabled) + "\n")

    def lines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def close(self) -> None:
        self.store.close()


@contextmanager
def open_session(
    config_path: str | None,
    *,
    reveal: bool = False,
    json: bool = False,
    out: TextIO | None = None,
    clock: Clock = utc_now,
) -> Iterator[Session]:
    """Load the configuration (``--config`` / ``$X12GW_CONFIG``) and open its store for one command."""
    config = load_config(config_path)
    store = open_store(config, role="operator", clock=clock)
    with suppress(X12GatewayError):
        set_mask_key(config.member_hash_key())  # masks match the run loop's logs when the key is here
    session = Session(config, store, reveal=reveal, json=json, out=out or sys.stdout, clock=clock)
    try:
        yield session
    finally:
        session.close()


def audit_items(values: list[str]) -> list[str]:
    """The subjects revealed, capped so one huge listing cannot bloat the audit table."""
    return values[:MAX_AUDIT_ITEMS]
