"""``/metrics``: Prometheus text exposition of live figures from the store.

A custom collector queries the store at scrape time (see :mod:`gateway.web.figures`) into a registry
of its own, so the process's default metrics and any other registry stay out of it and every scrape
shows the database as it is now, not counters that only this process saw. Acknowledgment files are
read once for their error codes (validation findings) and the counts kept per file id: files never
change once stored, so each scrape only reads files that arrived since the last one.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import select

from gateway.operators.queries import percentile
from gateway.runtime.config import GatewayConfig
from gateway.store import Store
from gateway.store import schema as s
from gateway.store.payloads import PayloadStore
from gateway.web import figures
from transactions.acks import ParsedAcks, parse_acks
from transactions.errors import X12GatewayError

PREFIX = "x12gw"
FINDINGS_SCAN = 500  # acknowledgment files read per scrape at most (the rest on the next scrapes)


def finding_codes(acks: ParsedAcks) -> Counter[tuple[str, str]]:
    """(level, code) counts in one acknowledgment file: TA1 notes, IK5/AK9 codes, IK3/IK4 errors."""
    out: Counter[tuple[str, str]] = Counter()
    for ta in acks.interchanges:
        if ta.note_code and ta.note_code != "000":
            out["interchange", ta.note_code] += 1
    for g in acks.groups:
        for code in g.codes:
            out["group", code] += 1
        for st in g.sets:
            for code in st.codes:
                out["set", code] += 1
            for e in st.errors:
                out["element" if e.element else "segment", e.code] += 1
    return out


class FindingsCache:
    """Error codes per acknowledgment file (ours and the partners'), read once per file."""

    def __init__(self, payloads: PayloadStore) -> None:
        self.payloads = payloads
        self.by_file: dict[int, tuple[str, Counter[tuple[str, str]]]] = {}
        self.lock = threading.Lock()

    def _read(self, sha256: str, payload_path: str | None) -> Counter[tuple[str, str]]:
        try:
            data = self.payloads.find(sha256, payload_path)
            return Counter() if data is None else finding_codes(parse_acks(data))
        except X12GatewayError:  # not an acknowledgment after all, or its blob cannot be read
            return Counter()

    def update(self, store: Store) -> Counter[tuple[str, str, str]]:
        """Read the acknowledgment files not read yet; (direction, level, code) totals over all.

        The candidates are listed by id on every scrape (not from a high-water mark): a received file
        becomes recognisable as a 999 or TA1 only once the inbound stage has recorded its envelopes,
        which may be after files with higher ids were read.
        """
        f, ic, ts = s.files, s.interchanges, s.transaction_sets
        inbound_acks = (
            select(ic.c.file_id).join(ts, ts.c.interchange_id == ic.c.id).where(ts.c.set_id == "999")
        )
        ta1_only = select(ic.c.file_id).outerjoin(ts, ts.c.interchange_id == ic.c.id).where(ts.c.id.is_(None))
        candidates = select(f.c.id).where(
            ((f.c.direction == "in") & (f.c.id.in_(inbound_acks) | f.c.id.in_(ta1_only)))
            | ((f.c.direction == "out") & f.c.id.not_in(select(ic.c.file_id)))
        )
        with self.lock:
            with store.read() as tx:
                ids = [row[0] for row in tx.conn.execute(candidates)]
                new = [i for i in ids if i not in self.by_file][:FINDINGS_SCAN]
                rows = (
                    tx.conn.execute(
                        select(f.c.id, f.c.direction, f.c.sha256, f.c.payload_path).where(f.c.id.in_(new))
                    ).all()
                    if new
                    else []
                )
            for file_id, direction, sha256, payload_path in rows:
                self.by_file[file_id] = (direction, self._read(sha256, payload_path))
            total: Counter[tuple[str, str, str]] = Counter()
            for direction, counts in self.by_file.values():
                for (level, code), n in counts.items():
                    total[direction, level, code] += n
            return total


class StoreCollector(Collector):
    """Every metric, from the store, at scrape time."""

    def __init__(self, store: Store, config: GatewayConfig, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.findings = FindingsCache(PayloadStore(config.folders.payloads, store))

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        with self.store.read() as tx:
            requests = figures.requests_by_state(tx)
            files = figures.files_by_state(tx)
            acks = figures.acks_by_code(tx)
            decisions = figures.responses_by_decision(tx)
            accept = figures.acceptance(tx)
            latencies = figures.ack_latencies(tx)
            waiting = figures.oldest_waiting(tx, now)
            partners = figures.partner_states(tx, [p.name for p in self.config.partners], now)
        yield _gauge("requests", "Requests by kind and state", ("kind", "state"), requests)
        yield _gauge("files", "Files by direction and state", ("direction", "state"), files)
        yield _gauge(
            "transaction_set_acks",
            "Our transaction sets by the partner's verdict (TA1 interchange, 999 group, 999 set)",
            ("level", "code"),
            acks,
        )
        yield _gauge(
            "responses", "Latest answers by transaction set and decision", ("set", "decision"), decisions
        )
        rate = GaugeMetricFamily(
            f"{PREFIX}_acceptance_ratio", "Accepted share of acknowledged sets (TA1 rejections included)"
        )
        if accept.rate is not None:
            rate.add_metric([], accept.rate)
        yield rate
        yield from self._latency(latencies)
        yield from self._queues(waiting)
        yield from self._partners(partners)
        yield from self._findings()

    def _latency(self, values: list[float]) -> Iterator[Metric]:
        g = GaugeMetricFamily(
            f"{PREFIX}_ack_latency_seconds",
            "Seconds from upload to the first 999 verdict, over recent files",
            labels=("quantile",),
        )
        for q in (0.5, 0.95):
            value = percentile(values, q)
            if value is not None:
                g.add_metric([str(q)], value)
        yield g

    def _queues(self, waiting: list[tuple[str, str, float, int]]) -> Iterator[Metric]:
        age = GaugeMetricFamily(
            f"{PREFIX}_queue_oldest_age_seconds",
            "Age of the oldest request or file waiting in each in-flight state (since its last change)",
            labels=("entity", "state"),
        )
        for entity, state, seconds, _count in waiting:
            age.add_metric([entity, state], seconds)
        yield age

    def _partners(self, partners: list[figures.PartnerState]) -> Iterator[Metric]:
        paused = GaugeMetricFamily(
            f"{PREFIX}_partner_paused", "1 while a partner is paused", labels=("partner",)
        )
        pauses = CounterMetricFamily(
            f"{PREFIX}_partner_pauses", "Times a partner was paused", labels=("partner",)
        )
        last = GaugeMetricFamily(
            f"{PREFIX}_partner_last_exchange_timestamp_seconds",
            "When a file last went to or came from the partner",
            labels=("partner",),
        )
        for p in partners:
            paused.add_metric([p.name], 1.0 if p.paused else 0.0)
            pauses.add_metric([p.name], p.pauses)
            if p.last_exchange is not None:
                last.add_metric([p.name], p.last_exchange.timestamp())
        yield from (paused, pauses, last)

    def _findings(self) -> Iterator[Metric]:
        c = CounterMetricFamily(
            f"{PREFIX}_validation_findings",
            "Error codes in acknowledgments: ours about the partner's files (out) and theirs about ours (in)",
            labels=("direction", "level", "code"),
        )
        for (direction, level, code), n in sorted(self.findings.update(self.store).items()):
            c.add_metric([direction, level, code], n)
        yield c


def _gauge(
    name: str, doc: str, labels: tuple[str, ...], rows: list[tuple[str, str, int]]
) -> GaugeMetricFamily:
    g = GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=labels)
    for a, b, n in rows:
        g.add_metric([a, b], n)
    return g


def make_registry(store: Store, config: GatewayConfig, clock: Callable[[], datetime]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store, config, clock))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
