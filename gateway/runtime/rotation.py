"""``x12gw keys rotate``: re-encrypt the sealed columns and re-hash member ids under new keys.

How it stays safe:

* The gateway must be stopped (a live node in ``nodes`` makes it refuse): a running node still holds the
  old keys and would write values the new key set cannot read after the switch.
* The new keys come from ``<VAR>_NEW`` environment variables, or from ``payload.key.new`` /
  ``member_hash.key.new`` in ``folders.state``, created by the first run of the command.
* Progress is durable: the target fingerprints and, per column, the last row id done are kept in
  ``store_meta``; each batch and its cursor commit together. After a crash, running the command again
  goes on where it stopped (values already under the new key are read with either key).
* The switch is last: the recorded fingerprints change in one transaction, then the key files are
  swapped (``*.key`` -> ``*.key.old``, ``*.key.new`` -> ``*.key``); a crash between the two is finished by
  the next run. Keys from the environment are reported for the operator to swap.

Limitation: claim hashes (``authorization_units.claim_hash``) cannot be recomputed (the claim ids are
not stored), so after a member-key rotation a claim committed before it is not recognised as the same
claim if committed again.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, insert, select, update

from gateway.errors import ConfigError, StoreError
from gateway.runtime.config import MEMBER_HASH_KEY_FILE, GatewayConfig
from gateway.runtime.context import utc_now
from gateway.runtime.datakeys import payload_key, payload_key_path, read_key_file, write_key_file
from gateway.store import hash_member_id, hash_patient, make_engine, migrate, sealing
from gateway.store import schema as s
from gateway.store.sealing import fingerprint, new_key_text, parse_key

SEALED: tuple[tuple[Table, str], ...] = (
    (s.requests, "payload"),
    (s.eligibility_results, "record"),
    (s.authorizations, "record"),
    (s.files, "name"),
    (s.api_requests, "response_body"),
    (s.remote_files, "name"),
    (s.payload_blobs, "data"),
)
TARGET = {"payload": "rotation_payload_target", "member": "rotation_member_target"}
CURSOR = "rotation_cursor:"
DEFAULT_BATCH = 200
Say = Callable[[str], None]


class Interrupted(Exception):  # noqa: N818 - a deliberate stop, not an error
    """Raised after ``max_batches`` batches (tests stand in for a crash with it)."""


@dataclass
class KeyPair:
    old: bytes
    new: bytes


def _meta(conn: Connection) -> dict[str, str]:
    return {str(k): str(v) for k, v in conn.execute(select(s.store_meta.c.key, s.store_meta.c.value))}


def _set_meta(conn: Connection, key: str, value: str) -> None:
    conn.execute(delete(s.store_meta).where(s.store_meta.c.key == key))
    conn.execute(insert(s.store_meta).values(key=key, value=value))


def _new_key(env_name: str, path: Path, *, member: bool, create: bool) -> bytes | None:
    """The new key: ``<env_name>_NEW`` from the environment, else the ``.new`` key file (made if allowed)."""
    value = os.environ.get(f"{env_name}_NEW", "").strip()
    if value:
        return value.encode() if member else parse_key(value)
    if not path.exists():
        if not create:
            return None
        write_key_file(path, new_key_text())
    if member:
        return path.read_text(encoding="ascii").strip().encode()
    return read_key_file(path)


def _member_key_paths(config: GatewayConfig) -> tuple[Path, Path]:
    path = config.folders.state / MEMBER_HASH_KEY_FILE
    return path, path.with_name(path.name + ".new")


def _payload_key_paths(config: GatewayConfig) -> tuple[Path, Path]:
    path = payload_key_path(config)
    return path, path.with_name(path.name + ".new")


def _refuse_if_running(engine: Engine, config: GatewayConfig) -> None:
    fresh = utc_now() - timedelta(seconds=max(2 * config.gateway.lease_seconds, 60.0))
    n = s.nodes
    with engine.connect() as conn:
        live = conn.execute(
            select(n.c.node_id).where(n.c.stopped_at.is_(None), n.c.last_seen >= fresh)
        ).first()
    if live is not None:
        raise ConfigError(
            "a gateway node is running on this database; stop every `x12gw run` before rotating"
        )


def _swap_files(config: GatewayConfig, which: str, say: Say) -> None:
    current, new = _payload_key_paths(config) if which == "payload" else _member_key_paths(config)
    if not new.exists():
        env = config.gateway.payload_key_env if which == "payload" else config.gateway.member_hash_key_env
        say(f"{which} key: now set {env} to the value of {env}_NEW before starting the gateway")
        return
    if current.exists():
        current.replace(current.with_name(current.name + ".old"))
    new.replace(current)
    say(f"{which} key: {current.name} replaced (the old key is kept as {current.name}.old for old backups)")


def _finish_pending_swap(engine: Engine, config: GatewayConfig, say: Say) -> bool:
    """A crash after the fingerprints switched but before the files moved: move them now."""
    done = False
    with engine.connect() as conn:
        meta = _meta(conn)
    for which, (_, new) in (("payload", _payload_key_paths(config)), ("member", _member_key_paths(config))):
        if not new.exists():
            continue
        text = new.read_text(encoding="ascii").strip()
        key = text.encode() if which == "member" else parse_key(text)
        if meta.get(f"{which}_key_fingerprint") == fingerprint(key):
            _swap_files(config, which, say)
            done = True
    return done


def _old_member_key(config: GatewayConfig) -> bytes:
    return config.member_hash_key()


def _start(engine: Engine, config: GatewayConfig, which: set[str]) -> dict[str, KeyPair]:
    """Load old and new keys; record the targets (first run) or check them (a resumed run)."""
    with engine.connect() as conn:
        meta = _meta(conn)
    resuming = any(TARGET[w] in meta for w in TARGET)
    if resuming:
        which = {w for w in TARGET if TARGET[w] in meta}
    pairs: dict[str, KeyPair] = {}
    if "payload" in which:
        new = _new_key(
            config.gateway.payload_key_env, _payload_key_paths(config)[1], member=False, create=True
        )
        assert new is not None  # noqa: S101 - created above when absent
        pairs["payload"] = KeyPair(payload_key(config), new)
    if "member" in which:
        new = _new_key(
            config.gateway.member_hash_key_env, _member_key_paths(config)[1], member=True, create=True
        )
        assert new is not None  # noqa: S101 - created above when absent
        pairs["member"] = KeyPair(_old_member_key(config), new)
    for w, pair in pairs.items():
        recorded = meta.get(f"{w}_key_fingerprint")
        if recorded is not None and recorded != fingerprint(pair.old):
            raise StoreError(
                f"the current {w} key is not the key this store was written with; nothing changed"
            )
        if resuming and meta.get(TARGET[w]) != fingerprint(pair.new):
            raise StoreError(f"the new {w} key is not the one the interrupted rotation started with")
    if not resuming:
        with engine.begin() as conn:
            for w, pair in pairs.items():
                _set_meta(conn, TARGET[w], fingerprint(pair.new))
    return pairs


def _member_id(payload: Any) -> str:
    subscriber = payload.get("subscriber") if isinstance(payload, dict) else None
    value = subscriber.get("member_id") if isinstance(subscriber, dict) else None
    return str(value or "")


def _request_hashes(payload: Any, key: bytes) -> dict[str, str | None]:
    """Every keyed hash a request row is found by, recomputed from its payload with the new key."""
    doc = payload if isinstance(payload, dict) else {}
    reference = doc.get("client_reference")
    patient = doc.get("dependent") or doc.get("subscriber") or {}
    last, born = (
        (patient.get("last_name"), patient.get("birth_date")) if isinstance(patient, dict) else (None, None)
    )
    return {
        "member_id_hash": hash_member_id(_member_id(payload), key),
        "client_reference_hash": hash_member_id(str(reference), key) if reference else None,
        "patient_hash": hash_patient(str(last), str(born), key) if last and born else None,
    }


def _rotate_column(
    engine: Engine, table: Table, column: str, member: KeyPair | None, *, batch: int, budget: list[int]
) -> int:
    """Re-write one column in id order from its cursor; returns how many rows were rewritten."""
    cursor_key = f"{CURSOR}{table.name}.{column}"
    done = 0
    while True:
        if budget and budget[0] <= 0:
            raise Interrupted
        with engine.begin() as conn:
            cursor = int(_meta(conn).get(cursor_key, "0"))
            rows = conn.execute(
                select(table.c.id, table.c[column])
                .where(table.c.id > cursor)
                .order_by(table.c.id)
                .limit(batch)
            ).all()
            if not rows:
                return done
            for row_id, value in rows:
                values: dict[str, Any] = {column: value}
                if member is not None and table is s.requests:
                    values |= _request_hashes(value, member.new)
                conn.execute(update(table).where(table.c.id == row_id).values(**values))
            _set_meta(conn, cursor_key, str(rows[-1][0]))
        done += len(rows)
        if budget:
            budget[0] -= 1


def rotate(
    config: GatewayConfig,
    *,
    which: set[str],
    batch: int = DEFAULT_BATCH,
    say: Say = print,
    max_batches: int | None = None,
) -> dict[str, int]:
    """Rotate the keys in ``which`` ({'payload', 'member'}); resumes an interrupted rotation."""
    engine = make_engine(config.database_url())
    try:
        migrate.require_current(engine)
        _refuse_if_running(engine, config)
        with engine.connect() as conn:
            in_progress = any(t in _meta(conn) for t in TARGET.values())
        if not in_progress and _finish_pending_swap(engine, config, say):
            return {}
        pairs = _start(engine, config, which)
        payload = pairs.get("payload")
        current = payload_key(config) if payload is None else payload.new
        older = [] if payload is None else [payload.old]
        sealing.install(engine.dialect, sealing.KeyRing(current, *older))
        budget = [max_batches] if max_batches is not None else []
        counts: dict[str, int] = {}
        for table, column in SEALED:
            member = pairs.get("member") if table is s.requests else None
            if payload is None and member is None:
                continue
            counts[f"{table.name}.{column}"] = _rotate_column(
                engine, table, column, member, batch=batch, budget=budget
            )
        with engine.begin() as conn:
            for w, pair in pairs.items():
                _set_meta(conn, f"{w}_key_fingerprint", fingerprint(pair.new))
                conn.execute(delete(s.store_meta).where(s.store_meta.c.key == TARGET[w]))
            conn.execute(delete(s.store_meta).where(s.store_meta.c.key.like(f"{CURSOR}%")))
        for w in pairs:
            _swap_files(config, w, say)
        return counts
    finally:
        engine.dispose()
