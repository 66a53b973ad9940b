"""Errors of the shell (config, SFTP, store, quarantine), all under the project's one root.

Third-party exceptions (paramiko, socket, database drivers) are mapped to these at the module that
talks to the outside world, so the run loop needs to know only this small hierarchy. Messages name
the partner, the operation and the reason, never PHI or secrets.
"""

from __future__ import annotations

from transactions.errors import X12GatewayError


class GatewayError(X12GatewayError):
    """Root of the shell's errors: the outside world (files, network, database) failed us."""


class ConfigError(GatewayError):
    """The configuration is invalid or unsafe (e.g. a private key file readable by others)."""


class TransferError(GatewayError):
    """A file transfer failed; ``retryable`` says whether trying again later may succeed.

    Dropped connections and timeouts are retryable; refused names, permissions, missing files and
    authentication failures are not (retrying would fail the same way). ``local`` marks trouble on our
    side (disk full, too many open files): it is retried later and never counted against the partner.
    """

    def __init__(
        self, message: str, *, retryable: bool, partner: str = "", operation: str = "", local: bool = False
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.partner = partner
        self.operation = operation
        self.local = local


class RemoteFileRefusedError(TransferError):
    """A partner's file is refused without being taken (larger than the limit, not a regular file):
    it stays on the server, the refusal is recorded with its reason, and the exchange goes on."""

    def __init__(self, message: str, *, why: str, partner: str = "", operation: str = "download") -> None:
        super().__init__(message, retryable=False, partner=partner, operation=operation)
        self.why = why  # the reason alone, without the file name (which may be PHI)


class HostKeyError(TransferError):
    """The server's host key is unknown or differs from the pinned one; never retryable.

    ``offered_fingerprint`` is the SHA256 fingerprint the server presented (OpenSSH format), so an
    operator can compare it with the one the partner announced out of band.
    """

    def __init__(
        self, message: str, *, offered_fingerprint: str = "", partner: str = "", operation: str = "connect"
    ) -> None:
        super().__init__(message, retryable=False, partner=partner, operation=operation)
        self.offered_fingerprint = offered_fingerprint


class StoreError(GatewayError):
    """The local store (database or files) could not record or read something."""


class StaleStateError(StoreError):
    """A state change expected a different current state: another worker moved the row first."""


class IllegalTransitionError(StaleStateError):
    """The lifecycle table (``gateway.lifecycle``) has no move for this event from the current state.

    A StaleStateError too: in the run loop it almost always means another worker moved the row first.
    The message names the entity type, the current state, the event and where the event leads; never
    an id's payload or any PHI.
    """

    def __init__(self, entity: str, state: str, event: str, targets: frozenset[str]) -> None:
        self.entity, self.state, self.event = entity, state, event
        self.targets = targets
        to = "/".join(sorted(targets)) or "?"
        super().__init__(f"{entity}: event {event!r} does not move {state!r} (it leads to {to!r})")


class QuarantineError(GatewayError):
    """A received file could not be moved into quarantine (so it must not be deleted remotely)."""
