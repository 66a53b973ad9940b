"""Which keys a store was written with: fingerprints in ``store_meta``, checked by every process.

A member search with the wrong HMAC key silently finds nothing, and a payload key that differs makes
stored requests unreadable; both are refused up front with a message naming the two fingerprints
(fingerprints are HMACs of a fixed label: they identify a key without revealing it).
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import select

from gateway.errors import StoreError
from gateway.store import schema as s
from gateway.store.sealing import fingerprint
from gateway.store.store import Store, _insert_ignore

KeyName = Literal["member_key", "payload_key"]
WHAT = {"member_key": "member-hash key", "payload_key": "payload key"}


def meta_key(name: KeyName) -> str:
    return f"{name}_fingerprint"


def recorded(store: Store, name: KeyName) -> str | None:
    """The fingerprint the store recorded for ``name`` (None: not recorded yet)."""
    with store.engine.connect() as conn:
        value = conn.execute(select(s.store_meta.c.value).where(s.store_meta.c.key == meta_key(name)))
        found = value.scalar_one_or_none()
    return None if found is None else str(found)


def check(store: Store, name: KeyName, key: bytes, *, record: bool) -> None:
    """Refuse a key whose fingerprint differs from the recorded one; record it first if ``record``."""
    mine = fingerprint(key)
    theirs = recorded(store, name)
    if theirs is None and record:
        with store.engine.begin() as conn:
            _insert_ignore(conn, s.store_meta, {"key": meta_key(name), "value": mine}, ("key",))
        theirs = recorded(store, name)
    if theirs is not None and theirs != mine:
        raise StoreError(
            f"wrong {WHAT[name]}: this store was written with key {theirs}, this process has key {mine}; "
            f"set the {WHAT[name]} the gateway uses (environment or key file, see README: data protection)"
        )


def replace(store: Store, name: KeyName, key: bytes) -> None:
    """Record ``key`` as the store's key (the last step of ``x12gw keys rotate``)."""
    with store.engine.begin() as conn:
        conn.execute(s.store_meta.delete().where(s.store_meta.c.key == meta_key(name)))
        conn.execute(s.store_meta.insert().values(key=meta_key(name), value=fingerprint(key)))
