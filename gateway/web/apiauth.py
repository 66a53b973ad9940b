"""Who may call the HTTP API, and with which scopes: API keys and mutual-TLS client certificates.

A client system (``api_clients`` table, managed by ``x12gw api-keys``) authenticates either with an API
key sent as ``Authorization: Bearer KEY`` or with a client certificate that the TLS layer verified
against ``x12gw serve --client-ca``; the certificate's subject (RFC 4514 text) names the client. The
store keeps only the SHA-256 of a key (a key is 256 random bits, so the digest cannot be reversed and
needs no salt), so neither a database dump nor a backup lets anyone call the API.

:func:`authorize` is what an endpoint calls: no or unknown credentials -> 401, a known client without
the endpoint's scope -> 403. The FHIR front door reuses it with its own scopes.

A live client found by its key or certificate is remembered for ``VERIFIED_SECONDS`` (per store:
:func:`verified`), so a busy client costs one store read per few seconds instead of one per call,
and a call whose client is remembered is authorized without a worker thread (:func:`remembered`).
Revocation still holds: :func:`revoke_client` forgets the client in its own process at once, and a
revocation made elsewhere (``x12gw api-keys revoke``, another node) is seen within
``VERIFIED_SECONDS``, when the entry expires and the store is read again. Unknown and revoked
credentials are never remembered.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import RowMapping, insert, select, update
from starlette.requests import HTTPConnection

from gateway.errors import GatewayError
from gateway.store import Store
from gateway.store import schema as s

SCOPES = ("eligibility:write", "authorizations:write", "requests:read", "authorizations:read")
KEY_PREFIX = "x12gw_"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
TLS_SUBJECT = "tls_client_subject"  # where the TLS layer leaves the verified peer's subject (scope state)


class ApiClientError(GatewayError):
    """A client name, scope or certificate subject that cannot be accepted (the message says why)."""


class ApiAuthError(GatewayError):
    """The caller is not authenticated (401) or lacks the endpoint's scope (403)."""

    def __init__(self, status: int, title: str) -> None:
        super().__init__(title)
        self.status = status
        self.title = title


@dataclass(frozen=True)
class ApiClient:
    """One client system: its name, how it authenticates and what it may do."""

    id: int
    name: str
    scopes: frozenset[str]
    key_hint: str | None
    cert_subject: str | None
    created_at: datetime
    revoked_at: datetime | None


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh API key: a recognisable prefix (secret scanners look for it) and 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _client(m: RowMapping) -> ApiClient:
    return ApiClient(
        id=m["id"],
        name=m["name"],
        scopes=frozenset(m["scopes"].split()),
        key_hint=m["key_hint"],
        cert_subject=m["cert_subject"],
        created_at=m["created_at"],
        revoked_at=m["revoked_at"],
    )


def check_new_client(name: str, scopes: tuple[str, ...], cert_subject: str | None) -> None:
    if not NAME.match(name):
        raise ApiClientError(
            "a client name is 1-64 letters, digits or . _ @ - (starting with one of the first two)"
        )
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ApiClientError(f"scopes are one or more of {', '.join(SCOPES)}")
    if cert_subject is not None and not 0 < len(cert_subject) <= 512:
        raise ApiClientError("a certificate subject is 1-512 characters (RFC 4514, e.g. CN=billing,O=Clinic)")


def add_client(
    store: Store, name: str, scopes: tuple[str, ...], *, cert_subject: str | None = None
) -> tuple[ApiClient, str | None]:
    """A new client: (the client, its API key) -- or no key when it authenticates by certificate. The key
    is returned once and never stored; a name already in use (even revoked) is refused."""
    check_new_client(name, scopes, cert_subject)
    key = None if cert_subject is not None else new_key()
    t = s.api_clients
    with store.begin() as tx:
        if tx.conn.execute(select(t.c.id).where(t.c.name == name)).first() is not None:
            raise ApiClientError(f"there is already an API client named {name}")
        if (
            cert_subject is not None
            and tx.conn.execute(select(t.c.id).where(t.c.cert_subject == cert_subject)).first()
        ):
            raise ApiClientError("another API client already has this certificate subject")
        values = {
            "name": name,
            "key_hash": key_hash(key) if key else None,
            "key_hint": key[: len(KEY_PREFIX) + 4] if key else None,
            "cert_subject": cert_subject,
            "scopes": " ".join(sorted(set(scopes))),
            "created_at": tx.now(),
        }
        tx.conn.execute(insert(t).values(**values))
        row = tx.conn.execute(select(t).where(t.c.name == name)).one()
    return _client(row._mapping), key


def list_clients(store: Store) -> list[ApiClient]:
    with store.read() as tx:
        rows = tx.conn.execute(select(s.api_clients).order_by(s.api_clients.c.name))
        return [_client(r._mapping) for r in rows]


def revoke_client(store: Store, name: str) -> bool:
    """Revoke a client (its key or certificate no longer works); False when no live client has that name."""
    t = s.api_clients
    with store.begin() as tx:
        done = tx.conn.execute(
            update(t).where(t.c.name == name, t.c.revoked_at.is_(None)).values(revoked_at=tx.now())
        )
    with _VERIFIED_LOCK:  # every store of this process (one may be another handle on this database)
        remembered_sets = list(_VERIFIED.values())
    for found in remembered_sets:
        found.forget(name)  # other processes see it within VERIFIED_SECONDS
    return bool(done.rowcount)


def find_client(store: Store, *, key: str | None = None, cert_subject: str | None = None) -> ApiClient | None:
    """The live client with this API key or certificate subject, or None (read from the store)."""
    t = s.api_clients
    where = t.c.key_hash == key_hash(key) if key is not None else t.c.cert_subject == cert_subject
    with store.read() as tx:
        row = tx.conn.execute(select(t).where(where, t.c.revoked_at.is_(None))).first()
    return None if row is None else _client(row._mapping)


Credential = tuple[str, str]  # ("key", SHA-256 of the key) or ("cert", certificate subject)
VERIFIED_SECONDS = 5.0


class Verified:
    """Live clients recently found by a credential, each for ``seconds`` after it was read; at most
    ``size`` of them (the oldest read is dropped first). Thread-safe: the web server's worker
    threads and its event loop share one."""

    def __init__(
        self, seconds: float = VERIFIED_SECONDS, size: int = 1024, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds, self.size, self.clock = seconds, size, clock
        self._lock = threading.Lock()
        self._found: dict[Credential, tuple[float, ApiClient]] = {}

    def get(self, credential: Credential) -> ApiClient | None:
        """The client remembered for ``credential``, or None when unknown or read too long ago."""
        with self._lock:
            found = self._found.get(credential)
            if found is None:
                return None
            if self.clock() - found[0] >= self.seconds:
                del self._found[credential]
                return None
            return found[1]

    def put(self, credential: Credential, client: ApiClient) -> None:
        with self._lock:
            self._found.pop(credential, None)
            while len(self._found) >= self.size:
                del self._found[next(iter(self._found))]
            self._found[credential] = (self.clock(), client)

    def forget(self, name: str) -> None:
        """Forget every credential of the client ``name`` (revoked in this process)."""
        with self._lock:
            for credential in [c for c, (_, client) in self._found.items() if client.name == name]:
                del self._found[credential]

    def clear(self) -> None:
        with self._lock:
            self._found.clear()


_VERIFIED: weakref.WeakKeyDictionary[Store, Verified] = weakref.WeakKeyDictionary()
_VERIFIED_LOCK = threading.Lock()


def verified(store: Store) -> Verified:
    """The clients remembered for ``store`` (one set per store: ids and scopes belong to its rows)."""
    with _VERIFIED_LOCK:
        found = _VERIFIED.get(store)
        if found is None:
            found = _VERIFIED[store] = Verified()
        return found


def _credential(conn: HTTPConnection) -> Credential | None:
    """The credential a call presents: its API key (hashed) when sent, else its verified certificate."""
    key = bearer_key(conn)
    if key is not None:
        return ("key", key_hash(key))
    subject = peer_subject(conn)
    return ("cert", subject) if subject is not None else None


def _find(store: Store, credential: Credential) -> ApiClient | None:
    kind, value = credential
    t = s.api_clients
    where = t.c.key_hash == value if kind == "key" else t.c.cert_subject == value
    with store.read() as tx:
        row = tx.conn.execute(select(t).where(where, t.c.revoked_at.is_(None))).first()
    return None if row is None else _client(row._mapping)


def bearer_key(conn: HTTPConnection) -> str | None:
    """The key of an ``Authorization: Bearer KEY`` header, or None."""
    scheme, _, value = conn.headers.get("authorization", "").partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def peer_subject(conn: HTTPConnection) -> str | None:
    """The subject of the client certificate the TLS layer verified on this connection, or None."""
    state = conn.scope.get("state") or {}
    subject = state.get(TLS_SUBJECT)
    return subject if isinstance(subject, str) else None


def authenticate(store: Store, conn: HTTPConnection) -> ApiClient:
    """The calling client: by API key when one is sent, else by verified client certificate; 401 if
    neither names a live client (remembered, or read from the store and then remembered)."""
    credential = _credential(conn)
    client = None
    if credential is not None:
        client = verified(store).get(credential)
        if client is None:
            client = _find(store, credential)
            if client is not None:
                verified(store).put(credential, client)
    if client is None:
        raise ApiAuthError(
            401, "an API key (Authorization: Bearer) or a registered client certificate is required"
        )
    return client


def authorize(store: Store, conn: HTTPConnection, scope: str) -> ApiClient:
    """The calling client if it may use ``scope``; ApiAuthError 401 or 403 otherwise."""
    return _scoped(authenticate(store, conn), scope)


def remembered(store: Store, conn: HTTPConnection, scope: str) -> ApiClient | None:
    """``authorize`` without the store: the client when its credential is remembered (403 without
    the scope), None when the store must be read (in a worker thread: see ``authorize``)."""
    credential = _credential(conn)
    client = verified(store).get(credential) if credential is not None else None
    return None if client is None else _scoped(client, scope)


def _scoped(client: ApiClient, scope: str) -> ApiClient:
    if scope not in client.scopes:
        raise ApiAuthError(403, f"this client lacks the scope {scope}")
    return client
