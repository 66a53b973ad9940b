"""Console users and login sessions, kept in the store (``users`` and ``web_sessions`` tables).

Passwords are hashed with scrypt (memory-hard, in the standard library) and a per-user random salt;
the parameters travel with the hash so they can be raised later without invalidating old ones. A
session is a random cookie token of which the store keeps only the SHA-256, plus a CSRF token that
every form of that session must echo back. Unknown names still cost one scrypt run, so response
times do not tell which user names exist.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import RowMapping, delete, insert, select, update

from gateway.errors import GatewayError
from gateway.store import Store
from gateway.store import schema as s

ROLES = ("viewer", "operator")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_LEN = 2**14, 8, 1, 32
SESSION_HOURS = 8


class UserError(GatewayError):
    """A user name, role or password that cannot be accepted (the message says why)."""


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    created_at: datetime

    @property
    def operator(self) -> bool:
        return self.role == "operator"


@dataclass(frozen=True)
class WebSession:
    """A logged-in browser: who, the CSRF token its forms carry, and when it ends."""

    user: User
    csrf_token: str
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$key`` (base64), with a fresh 16-byte salt unless one is given."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    key = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=KEY_LEN
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time comparison; malformed hashes never match)."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key)
        got = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=256 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


_DUMMY_HASH = hash_password("not a password", salt=b"\0" * 16)


def check_new_user(name: str, role: str, password: str) -> None:
    if not NAME.match(name):
        raise UserError("a user name is 1-64 letters, digits or . _ @ - (starting with a letter or digit)")
    if role not in ROLES:
        raise UserError(f"the role must be one of {', '.join(ROLES)}")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UserError(f"the password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long")


def _user(m: RowMapping) -> User:
    return User(id=m["id"], name=m["name"], role=m["role"], created_at=m["created_at"])


def add_user(store: Store, name: str, role: str, password: str) -> User:
    """Create a user, or replace the role and password of an existing one (and end its sessions)."""
    check_new_user(name, role, password)
    hashed = hash_password(password)
    t = s.users
    with store.begin() as tx:
        now = tx.now()
        row = tx.conn.execute(select(t).where(t.c.name == name)).first()
        if row is None:
            values = {
                "name": name,
                "role": role,
                "password_hash": hashed,
                "created_at": now,
                "updated_at": now,
            }
            tx.conn.execute(insert(t).values(**values))
        else:
            tx.conn.execute(
                update(t).where(t.c.id == row.id).values(role=role, password_hash=hashed, updated_at=now)
            )
            tx.conn.execute(delete(s.web_sessions).where(s.web_sessions.c.user_id == row.id))
        return _user(tx.conn.execute(select(t).where(t.c.name == name)).one()._mapping)


def remove_user(store: Store, name: str) -> bool:
    """Delete a user and its sessions; False when there was no such user."""
    t = s.users
    with store.begin() as tx:
        row = tx.conn.execute(select(t.c.id).where(t.c.name == name)).first()
        if row is None:
            return False
        tx.conn.execute(delete(s.web_sessions).where(s.web_sessions.c.user_id == row.id))
        tx.conn.execute(delete(t).where(t.c.id == row.id))
    return True


def list_users(store: Store) -> list[User]:
    with store.read() as tx:
        return [_user(r._mapping) for r in tx.conn.execute(select(s.users).order_by(s.users.c.name))]


def authenticate(store: Store, name: str, password: str) -> User | None:
    """The user if the password is right, else None (same work whether the name exists or not)."""
    with store.read() as tx:
        row = tx.conn.execute(select(s.users).where(s.users.c.name == name)).first()
    stored = row.password_hash if row is not None else _DUMMY_HASH
    ok = verify_password(password[:MAX_PASSWORD], stored)
    return _user(row._mapping) if row is not None and ok else None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start_session(store: Store, user: User, *, hours: float = SESSION_HOURS) -> tuple[str, WebSession]:
    """A new session for ``user``: (the cookie token, the session). Expired sessions are swept here."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    t = s.web_sessions
    with store.begin() as tx:
        now = tx.now()
        tx.conn.execute(delete(t).where(t.c.expires_at < now))
        expires = now + timedelta(hours=hours)
        values = {
            "token_hash": token_hash(token),
            "user_id": user.id,
            "csrf_token": csrf,
            "created_at": now,
            "expires_at": expires,
        }
        tx.conn.execute(insert(t).values(**values))
    return token, WebSession(user, csrf, expires)


def find_session(store: Store, token: str) -> WebSession | None:
    """The live session a cookie token names, or None (unknown, expired, or its user was removed)."""
    t, u = s.web_sessions, s.users
    stmt = (
        select(t.c.csrf_token, t.c.expires_at, u.c.id, u.c.name, u.c.role, u.c.created_at)
        .join(u, u.c.id == t.c.user_id)
        .where(t.c.token_hash == token_hash(token))
    )
    with store.read() as tx:
        row = tx.conn.execute(stmt).first()
        now = tx.now()
    if row is None or row.expires_at <= now:
        return None
    return WebSession(_user(row._mapping), row.csrf_token, row.expires_at)


def end_session(store: Store, token: str) -> None:
    with store.begin() as tx:
        tx.conn.execute(delete(s.web_sessions).where(s.web_sessions.c.token_hash == token_hash(token)))
