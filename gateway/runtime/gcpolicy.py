"""The garbage-collector policy of the gateway's long-running and bulk commands.

Why: validating and mapping allocate many small objects (segments, placed segments, nodes, field
dicts), and a whole-file validation holds every set's until the file is done (``x12gw map`` and
``validate --json``, ``validate_detailed``). With CPython's default thresholds (a young collection
every 700 net allocations, an older one every 10 of those) each older collection walks every held
object again, maps and rules included: on 4.8 MB of 271s validated and mapped whole, 0.7 s of about
5 s of CPU went to collections, about 0.2 s with this policy (counted with ``gc.callbacks``). Set by set
(the inbound stage, ``--jsonl``) little is held and the collector costs under 1% either way: there the
policy changes nothing measurable. Nothing here leaks by cycles on purpose, so two changes lose
nothing but that overhead:

* ``gc.freeze()`` once the maps and rules are loaded: those tables move to the permanent generation,
  which no collection walks (they are never freed anyway);
* a larger young threshold (:data:`THRESHOLDS`): a collection every 10,000 net allocations instead
  of 700, so the per-set objects mostly die by reference counting before any pass sees them. The
  older generations keep their default ratios (10, 10): raising those too (50,000, 20, 100 saves
  another 0.1 s) would leave any cyclic garbage that reaches the oldest generation uncollected for
  up to a hundred million allocations. Memory stays bounded: the collector still runs, only less often
  (``bench/bench_inbound.py`` and ``bench/bench_memory.py`` measure peak RSS with the policy on and off).

The pure core (``transactions``, ``mappings``) never touches ``gc``: the policy is the shell's, applied
by :func:`apply` when ``x12gw run`` and ``serve`` (and each of its worker processes) start (tables
loaded first: they build, validate and map all day; frozen before the maps compile, ``serve`` spent
about 3 ms more CPU per real-time call than with CPython's defaults, as the collector kept walking
the maps), and, without loading maps ahead (:func:`apply_unwarmed`), when ``validate`` and ``map``
start and in ``validate``'s worker processes. ``X12GW_GC=off`` keeps CPython's defaults (to compare,
or if a deployment prefers them).
"""

from __future__ import annotations

import gc
import os

ENV = "X12GW_GC"
THRESHOLDS = (10_000, 10, 10)  # gen0 allocations, gen0 passes per gen1 pass, gen1 passes per gen2 pass


def enabled() -> bool:
    """Whether the policy applies: on unless ``$X12GW_GC`` is ``off`` (or ``0``, ``false``, ``no``)."""
    return os.environ.get(ENV, "on").strip().lower() not in ("off", "0", "false", "no")


def warm_tables() -> None:
    """Load what every validation and mapping of a response uses for the life of the process: the
    compiled tables of the project's own maps (270, 271, 278), the default mapping rules and their
    compiled form. Loading them before ``gc.freeze()`` is what moves them out of every collection."""
    from mappings.compiled_rules import compiled_record  # noqa: PLC0415 - only for bulk commands
    from mappings.mapper import default_rules  # noqa: PLC0415
    from transactions.engine.compile import compiled_map  # noqa: PLC0415
    from transactions.maps import index as map_index  # noqa: PLC0415

    for entry in map_index():
        if entry.source == "ours":
            compiled_map(entry.file, entry.source)
    for rule in default_rules().default.values():
        compiled_record(rule)


def apply(*, warm: bool = True) -> bool:
    """Apply the policy (see the module docstring) unless ``$X12GW_GC`` turns it off; True if applied.
    ``warm`` loads the tables first (:func:`warm_tables`); call it after configuration is loaded, so
    that is frozen too."""
    if not enabled():
        return False
    if warm:
        warm_tables()
    gc.collect()  # what is garbage now is freed, not frozen
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    return True


def apply_unwarmed() -> None:
    """:func:`apply` without loading tables ahead: for one-off commands (``x12gw validate``, ``map``)
    and their worker processes, where compiling maps the input may not use (about 0.1 s each) costs
    more than keeping them out of the rare collections of older generations."""
    apply(warm=False)
