"""A key ring's kept name <-> token pairs: sealing and unsealing a name give what a ring that has never
seen it gives (the reference: a fresh ring), for names met before, past the kept count, and for
tokens of an older key during a rotation."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from gateway.store import sealing
from gateway.store.sealing import KeyRing

KEY = os.urandom(32)
OLD = os.urandom(32)
RING = KeyRing(KEY, OLD)  # shared across examples: its kept pairs grow as hypothesis runs

names = st.text(min_size=1, max_size=80)


@given(st.lists(names, min_size=1, max_size=20))
def test_kept_pairs_seal_and_unseal_as_a_fresh_ring_does(batch: list[str]) -> None:
    """Each name seals to the token a fresh ring makes, twice over, and unseals back to itself."""
    for name in batch + batch:
        token = RING.seal_name(name)
        assert token == KeyRing(KEY).seal_name(name)
        assert RING.unseal_name(token) == name
        assert KeyRing(KEY).unseal_name(token) == name


def test_past_the_kept_count_the_pairs_start_afresh_and_stay_right() -> None:
    """More names than a ring keeps: every token still unseals to its own name."""
    ring = KeyRing(KEY)
    many = [f"file-{n}.x12" for n in range(sealing._NAMES_KEPT + 10)]
    tokens = [ring.seal_name(n) for n in many]
    assert len(ring._names) <= sealing._NAMES_KEPT
    assert [ring.unseal_name(t) for t in tokens] == many
    assert [ring.seal_name(n) for n in many] == tokens


def test_an_older_keys_token_unseals_but_is_never_what_sealing_gives() -> None:
    """During a rotation an older key's token reads back; sealing the name gives the current key's."""
    ring = KeyRing(KEY, OLD)
    old_token = KeyRing(OLD).seal_name("claims-0001.x12")
    assert ring.unseal_name(old_token) == "claims-0001.x12"
    assert ring.seal_name("claims-0001.x12") == KeyRing(KEY).seal_name("claims-0001.x12")
    assert ring.seal_name("claims-0001.x12") != old_token
