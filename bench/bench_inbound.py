"""Inbound stage memory: one downloaded response file (a batch of 271s, default 30 MB) processed by
the gateway's inbound stage (validate, map, store, our 999) in a fresh process with its own SQLite
store, so its peak RSS is the stage's own. The target is under 200 MiB for 30 MB.

    python bench/bench_inbound.py [--mb 30] [--limit-mib 200] [--gc both|policy|default]

``--gc`` (default both): with the gateway's collector policy (``gateway.runtime.gcpolicy``, applied
as ``x12gw run`` does once its context is open) and with CPython's defaults, each in its own process.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import batch_271, scratch_file
from bench.measure import measure


def process(data_path: str, base: str, policy: bool) -> tuple[str, int, int]:
    """(final file state, transaction sets recorded, our acknowledgments queued) for one file."""
    # imported in the measured process
    from gateway.lifecycle import FileState  # noqa: PLC0415
    from gateway.runtime import gcpolicy  # noqa: PLC0415
    from gateway.runtime.config import parse_config  # noqa: PLC0415
    from gateway.runtime.runner import load_mapping_rules, open_context  # noqa: PLC0415
    from gateway.stages import inbound  # noqa: PLC0415
    from gateway.transport.keys import ensure_key, public_line  # noqa: PLC0415
    from tests.e2e_harness import config_text  # noqa: PLC0415

    logging.disable(logging.WARNING)  # every unmatched response is a warning: not what is measured
    root = Path(base)
    key = root / "keys" / "host"
    ensure_key(key)
    text = config_text(port=22, host_key_line=public_line(key), key_file=key, remote_root="")
    ctx = open_context(parse_config(tomllib.loads(text), root / "gw"))
    if policy:
        gcpolicy.apply()
    data = Path(data_path).read_bytes()
    sha, path = ctx.payloads.put(data)
    del data
    with ctx.store.begin() as tx:
        row = tx.files.record(
            direction="in",
            partner="sim",
            name="bench-271.x12",
            sha256=sha,
            size=Path(data_path).stat().st_size,
            payload_path=str(path),
            state=FileState.DOWNLOADED,
        )
    inbound.process_downloaded(ctx, load_mapping_rules(ctx.config))
    with ctx.store.read() as tx:
        state = tx.files.get(row.id).state
        acks = len(tx.files.query(direction="out", limit=10))
        sets = len(tx.envelopes.find_sets(set_id="271", limit=10_000))  # the store's largest page
    ctx.store.close()
    return state, sets, acks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=30.0)
    parser.add_argument("--limit-mib", type=float, default=200.0)
    parser.add_argument("--gc", choices=("both", "policy", "default"), default="both")
    args = parser.parse_args()
    path = scratch_file("inbound-271", batch_271, args.mb)
    size = path.stat().st_size / 1e6
    policies = {"both": (False, True), "policy": (True,), "default": (False,)}[args.gc]
    for policy in policies:
        with tempfile.TemporaryDirectory() as base:
            seconds, peak, (state, sets, acks) = measure(process, str(path), base, policy)
        verdict = "under" if peak < args.limit_mib else "OVER"
        print(
            f"inbound  271 file {size:6.1f} MB  gc {'policy' if policy else 'default':7}  "
            f"{sets:,}{'+' if sets == 10_000 else ''} sets  {state}  {acks} ack file(s)  {seconds:6.1f} s  "
            f"{size / seconds:5.2f} MB/s  peak RSS {peak:5.0f} MiB  ({verdict} {args.limit_mib:g} MiB)"
        )


if __name__ == "__main__":
    main()
