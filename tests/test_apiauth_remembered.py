"""API clients remembered between calls (``apiauth.Verified``): fewer store reads, revocation still held."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from starlette.requests import HTTPConnection

from gateway.store import Store
from gateway.store import schema as s
from gateway.web import apiauth
from gateway.web.apiauth import ApiAuthError, Verified

pytest_plugins = ["tests.store_fixtures"]


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def call_with(key: str) -> HTTPConnection:
    return HTTPConnection({"type": "http", "headers": [(b"authorization", f"Bearer {key}".encode())]})


def revoke_elsewhere(store: Store, name: str) -> None:
    """What ``api-keys revoke`` in another process does to the store (this process is not told)."""
    t = s.api_clients
    with store.begin() as tx:
        tx.conn.execute(update(t).where(t.c.name == name).values(revoked_at=tx.now()))


@pytest.fixture
def ticks(store: Store, monkeypatch: pytest.MonkeyPatch) -> Ticks:
    clock = Ticks()
    monkeypatch.setitem(apiauth._VERIFIED, store, Verified(clock=clock))
    return clock


def test_a_revocation_made_elsewhere_holds_once_the_remembered_entry_expires(
    store: Store, ticks: Ticks
) -> None:
    """A client revoked by another process keeps working only until VERIFIED_SECONDS after its last read."""
    _, key = apiauth.add_client(store, "billing", ("eligibility:write",))
    assert key is not None
    assert apiauth.authorize(store, call_with(key), "eligibility:write").name == "billing"
    revoke_elsewhere(store, "billing")
    ticks.now += apiauth.VERIFIED_SECONDS - 0.5
    assert apiauth.authorize(store, call_with(key), "eligibility:write").name == "billing"
    ticks.now += 0.5
    with pytest.raises(ApiAuthError) as refused:
        apiauth.authorize(store, call_with(key), "eligibility:write")
    assert refused.value.status == 401


def test_a_revocation_in_this_process_holds_at_once(store: Store, ticks: Ticks) -> None:
    """``revoke_client`` forgets the remembered client: the very next call is refused."""
    _, key = apiauth.add_client(store, "billing", ("eligibility:write",))
    assert key is not None
    apiauth.authorize(store, call_with(key), "eligibility:write")
    assert apiauth.revoke_client(store, "billing")
    assert apiauth.remembered(store, call_with(key), "eligibility:write") is None
    with pytest.raises(ApiAuthError):
        apiauth.authorize(store, call_with(key), "eligibility:write")


def test_remembered_answers_without_the_store_only_for_a_client_read_before(
    store: Store, ticks: Ticks
) -> None:
    """``remembered`` is None for a credential never read (or an unknown one), the client once read,
    and a 403 for a scope the remembered client lacks."""
    _, key = apiauth.add_client(store, "billing", ("eligibility:write",))
    assert key is not None
    assert apiauth.remembered(store, call_with(key), "eligibility:write") is None
    with pytest.raises(ApiAuthError):
        apiauth.authorize(store, call_with("x12gw_unknown"), "eligibility:write")
    assert apiauth.remembered(store, call_with("x12gw_unknown"), "eligibility:write") is None
    apiauth.authorize(store, call_with(key), "eligibility:write")
    found = apiauth.remembered(store, call_with(key), "eligibility:write")
    assert found is not None
    assert found.name == "billing"
    with pytest.raises(ApiAuthError) as refused:
        apiauth.remembered(store, call_with(key), "requests:read")
    assert refused.value.status == 403


def test_the_remembered_set_is_bounded_oldest_read_dropped_first(store: Store) -> None:
    """At most ``size`` clients are remembered; a new one drops the one read longest ago."""
    remembered = Verified(size=2)
    clients = [apiauth.add_client(store, f"c{n}", ("requests:read",))[0] for n in range(3)]
    for n, client in enumerate(clients):
        remembered.put(("key", str(n)), client)
    assert remembered.get(("key", "0")) is None
    assert [remembered.get(("key", str(n))) for n in (1, 2)] == clients[1:]
