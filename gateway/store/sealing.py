"""Encryption at rest for the PHI columns of the store (request JSON, result records, file names).

Why it is built this way:

* One 32-byte data key from the environment (``gateway.payload_key_env``, default ``X12GW_PAYLOAD_KEY``)
  or, for a single node, a key file in ``folders.state`` that only ``run``/``demo`` may create. Two
  sub-keys are derived from it (HKDF-SHA256): AES-256-GCM for JSON documents (random nonce per value)
  and AES-SIV for file names, which must be deterministic so that "is this remote file known?" stays
  an equality lookup.
* The columns keep their JSON/string types: a sealed value is a string ``x12gw:1:<fingerprint>:<b64>``
  (JSON documents) or ``x12gw~<fingerprint>~<b64>`` (names). Rows written before sealing existed are
  read as they are, and ``x12gw keys rotate`` seals them in batches. Raw payloads kept in the store
  (``payload_blobs.data``, bytes) start with a tag byte instead, so no payload's own first bytes can
  pass for a sealed one: ``P`` + the bytes as they are, or ``S`` + fingerprint + nonce + AES-GCM.
* The SQLAlchemy column types (``gateway.store.schema``) find the :class:`KeyRing` on the engine's dialect,
  so every existing query seals and unseals without knowing it; an engine without a key ring stores
  plain values (library use and unit tests of the store), which ``gateway.store.keycheck`` refuses once a
  store has recorded a payload-key fingerprint.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.errors import StoreError
from gateway.runtime.randpool import POOL

DOC_PREFIX = "x12gw:1:"
NAME_PREFIX = "x12gw~"
BYTES_PLAIN = b"P"  # first byte of a stored payload blob: kept as it is (no key ring)
BYTES_SEALED = b"S"  # ... sealed: fingerprint, nonce, AES-GCM ciphertext
_BYTES_AAD = b"x12gw blob v1"
KEY_BYTES = 32
FINGERPRINT_CHARS = 16
# AES-GCM nonce bytes. A nonce must never repeat under one key, and it is public (stored beside the
# ciphertext), so it is drawn from ``randpool.POOL``: the same CSPRNG, a block per system call
# instead of a ``getrandom`` per sealed value, each of which let the interpreter lock go (a real-time
# call seals its result record and its payloads: each release a wait to get the lock back under load)
_NONCE = 12
_NAMES_KEPT = 4096  # name <-> token pairs a key ring keeps (see ``KeyRing.seal_name``)
_DIALECT_ATTRIBUTE = "x12gw_keyring"


def fingerprint(key: bytes) -> str:
    """A short public identifier of ``key``: HMAC of a fixed label, so the key cannot be recovered."""
    return hmac.new(key, b"x12gw key fingerprint v1", hashlib.sha256).hexdigest()[:FINGERPRINT_CHARS]


def _derive(key: bytes, label: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=label).derive(key)


def parse_key(text: str) -> bytes:
    """A data key from its text form (64 hex digits or urlsafe base64 of 32 bytes)."""
    value = text.strip()
    try:
        raw = bytes.fromhex(value) if len(value) == 2 * KEY_BYTES else base64.urlsafe_b64decode(value)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != KEY_BYTES:
        raise StoreError("the payload key must be 32 bytes, written as 64 hex digits or base64")
    return raw


def new_key_text() -> str:
    """A fresh random data key in the text form :func:`parse_key` reads."""
    return os.urandom(KEY_BYTES).hex()


@dataclass(frozen=True)
class DataKey:
    """One data key with its derived ciphers."""

    raw: bytes = field(repr=False)

    @functools.cached_property
    def fingerprint(self) -> str:
        """Computed once per key: every sealed value names it (an HMAC per value was a visible share
        of the store's CPU)."""
        return fingerprint(self.raw)

    def gcm(self) -> AESGCM:
        return AESGCM(_derive(self.raw, b"x12gw doc v1", 32))

    def siv(self) -> AESSIV:
        return AESSIV(_derive(self.raw, b"x12gw name v1", 64))


class KeyRing:
    """The current data key (sealing) plus older keys still accepted for unsealing during a rotation."""

    def __init__(self, current: bytes, *older: bytes) -> None:
        self.current = DataKey(current)
        self._keys = {k.fingerprint: k for k in (DataKey(o) for o in older)}
        self._keys[self.current.fingerprint] = self.current
        self._gcm = {fp: k.gcm() for fp, k in self._keys.items()}
        self._siv = {fp: k.siv() for fp, k in self._keys.items()}
        # names seal deterministically, so a name and its token are one pair for this ring: the
        # pairs met lately are kept (a file row is read back and moved several times per call)
        self._tokens: dict[str, str] = {}
        self._names: dict[str, str] = {}

    @property
    def fingerprint(self) -> str:
        return self.current.fingerprint

    def _key_for(self, fp: str) -> str:
        if fp not in self._keys:
            raise StoreError(
                f"a stored value was sealed with payload key {fp}, which this process does not have "
                f"(its key is {self.fingerprint}); set the right key (see README: data protection)"
            )
        return fp

    # -- JSON documents ----------------------------------------------------------------------------

    def seal_doc(self, doc: Any) -> str:
        nonce = POOL.take(_NONCE)  # see ``_NONCE``
        plain = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode("utf-8")
        data = nonce + self._gcm[self.fingerprint].encrypt(nonce, plain, DOC_PREFIX.encode())
        return f"{DOC_PREFIX}{self.fingerprint}:{base64.b64encode(data).decode('ascii')}"

    def unseal_doc(self, value: str) -> Any:
        fp, _, b64 = value[len(DOC_PREFIX) :].partition(":")
        data = base64.b64decode(b64)
        try:
            plain = self._gcm[self._key_for(fp)].decrypt(data[:_NONCE], data[_NONCE:], DOC_PREFIX.encode())
        except InvalidTag:
            raise StoreError("a sealed value failed its integrity check (wrong key or damaged)") from None
        return json.loads(plain)

    # -- raw payloads (bytes) ----------------------------------------------------------------------

    def seal_bytes(self, data: bytes) -> bytes:
        """``S`` + fingerprint + nonce + AES-GCM of ``data`` (the document key, another label)."""
        nonce = POOL.take(_NONCE)
        sealed = self._gcm[self.fingerprint].encrypt(nonce, data, _BYTES_AAD)
        return BYTES_SEALED + self.fingerprint.encode("ascii") + nonce + sealed

    def unseal_bytes(self, value: bytes) -> bytes:
        fp = value[1 : 1 + FINGERPRINT_CHARS].decode("ascii", errors="replace")
        body = value[1 + FINGERPRINT_CHARS :]
        try:
            return self._gcm[self._key_for(fp)].decrypt(body[:_NONCE], body[_NONCE:], _BYTES_AAD)
        except InvalidTag:
            raise StoreError("a sealed payload failed its integrity check (wrong key or damaged)") from None

    # -- names (deterministic) ---------------------------------------------------------------------

    def seal_name(self, name: str) -> str:
        token = self._tokens.get(name)
        if token is None:
            data = self._siv[self.fingerprint].encrypt(name.encode("utf-8"), [NAME_PREFIX.encode()])
            token = f"{NAME_PREFIX}{self.fingerprint}~{base64.urlsafe_b64encode(data).decode('ascii')}"
            self._remember(name, token)
        return token

    def unseal_name(self, value: str) -> str:
        name = self._names.get(value)
        if name is not None:
            return name
        fp, _, b64 = value[len(NAME_PREFIX) :].partition("~")
        try:
            data = base64.urlsafe_b64decode(b64)
            name = self._siv[self._key_for(fp)].decrypt(data, [NAME_PREFIX.encode()]).decode("utf-8")
        except InvalidTag:
            raise StoreError("a sealed name failed its integrity check (wrong key or damaged)") from None
        if fp == self.fingerprint:  # an older key's token is not what seal_name would give
            self._remember(name, value)
        return name

    def _remember(self, name: str, token: str) -> None:
        if len(self._names) >= _NAMES_KEPT:  # started afresh rather than tracking the oldest
            self._tokens.clear()
            self._names.clear()
        self._tokens[name] = token
        self._names[token] = name


class StoredBytes(bytes):
    """Bytes already in their stored form (tagged, and sealed when the engine has a key ring), made
    before the transaction that writes them (``PayloadStore.stage``: no AES-GCM while the writer lock
    is held); ``SealedBytes`` binds them as they are."""

    __slots__ = ()


def stored_bytes(ring: KeyRing | None, data: bytes) -> StoredBytes:
    """``data`` as ``SealedBytes`` would store it on an engine with ``ring`` (None: plain, tagged)."""
    return StoredBytes(BYTES_PLAIN + data if ring is None else ring.seal_bytes(data))


def is_sealed_doc(value: object) -> bool:
    return isinstance(value, str) and value.startswith(DOC_PREFIX)


def is_sealed_name(value: object) -> bool:
    return isinstance(value, str) and value.startswith(NAME_PREFIX)


def is_sealed_bytes(value: object) -> bool:
    return isinstance(value, bytes | bytearray | memoryview) and bytes(value[:1]) == BYTES_SEALED


def sealed_fingerprint(value: str) -> str:
    """The fingerprint of the key a sealed value (document or name) was sealed with."""
    if value.startswith(DOC_PREFIX):
        return value[len(DOC_PREFIX) :].partition(":")[0]
    return value[len(NAME_PREFIX) :].partition("~")[0]


def install(dialect: Any, ring: KeyRing | None) -> None:
    """Make ``ring`` the key ring of every statement run through an engine with this dialect."""
    setattr(dialect, _DIALECT_ATTRIBUTE, ring)


def ring_of(dialect: Any) -> KeyRing | None:
    ring = getattr(dialect, _DIALECT_ATTRIBUTE, None)
    return ring if isinstance(ring, KeyRing) else None


def unseal_without_ring(value: object) -> None:
    """Reading a sealed value on an engine without a key ring: a clear refusal, not ciphertext."""
    if is_sealed_doc(value) or is_sealed_name(value) or is_sealed_bytes(value):
        raise StoreError(
            "this store holds encrypted payloads but no payload key is configured "
            "(set the payload key environment variable; see README: data protection)"
        )
