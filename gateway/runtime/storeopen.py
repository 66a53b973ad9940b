"""How commands open the store: schema revision checked (never migrated by surprise), keys verified.

Rules (README: upgrades, data protection):

* ``run`` creates the schema on a database with no tables (a fresh install has nothing to migrate) and
  migrates an older schema only when started with ``--upgrade``; every other command refuses a schema
  that is not current and says to run ``x12gw db upgrade``.
* ``serve`` opens a store whatever its revision: ``/readyz`` reports a stale schema (503) instead of the
  server refusing to start, so a load balancer sees why; the payload key is loaded once it is current.
* ``run`` may create the payload and member-hash key files on first start and records their
  fingerprints in the store; operator commands never create keys, and every process refuses a key whose
  fingerprint differs from the recorded one.
"""

from __future__ import annotations

from typing import Literal

from gateway.errors import ConfigError
from gateway.runtime.config import GatewayConfig
from gateway.runtime.context import utc_now
from gateway.runtime.datakeys import payload_key
from gateway.runtime.filemask import set_mask_key
from gateway.store import Store, keycheck, make_engine, migrate, sealing, upgrade
from gateway.store.store import Clock

Role = Literal["run", "operator", "serve"]


def open_store(
    config: GatewayConfig, *, role: Role, allow_upgrade: bool = False, clock: Clock = utc_now
) -> Store:
    """The configured store, checked for ``role`` (see the module docstring)."""
    engine = make_engine(config.database_url())
    try:
        found = migrate.state(engine)
        if (found.status == "empty" and role == "run") or (found.status == "behind" and allow_upgrade):
            upgrade(engine)
        elif role == "serve" and found.status != "current":
            return Store.attach(engine, clock=clock)  # /readyz says why; nothing sealed can be read yet
        else:
            migrate.require_current(engine)
    except BaseException:
        engine.dispose()
        raise
    store = Store.attach(engine, clock=clock)
    try:
        key = _payload_key(config, store, role)
        if key is not None:
            sealing.install(engine.dialect, sealing.KeyRing(key))
            keycheck.check(store, "payload_key", key, record=role == "run")
        if role == "run":
            member_key = config.member_hash_key(create=True)
            keycheck.check(store, "member_key", member_key, record=True)
            set_mask_key(member_key)
    except BaseException:
        store.close()
        raise
    return store


def _payload_key(config: GatewayConfig, store: Store, role: Role) -> bytes | None:
    """The payload key; an operator may go without one only on a store that never had one (a database
    written by an older release or by library use, before the first ``x12gw run`` sealed anything)."""
    try:
        return payload_key(config, create=role == "run")
    except ConfigError:
        if role == "run" or keycheck.recorded(store, "payload_key") is not None:
            raise
        return None


def verified_member_key(config: GatewayConfig, store: Store) -> bytes:
    """The member-hash key for an operator's search, refused when it is not the store's key."""
    key = config.member_hash_key()
    keycheck.check(store, "member_key", key, record=False)
    return key
