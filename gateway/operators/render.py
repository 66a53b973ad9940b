"""Terminal rendering of the ``log show`` and ``auth show`` views (``--json`` prints the views as
they are). Lines are fitted to the session's width; states and acknowledgment codes are coloured."""

from __future__ import annotations

from typing import Any

from gateway.operators import core_view
from gateway.operators.formatting import Column, Painter, clip, render_pairs, render_table
from gateway.operators.session import Session

NAME_ROOM = 38  # element names are cut to this (or less, so that the value fits the line)
HISTORY_COLUMNS = (
    Column("at (UTC)", "at"),
    Column("what", "entity", flexible=True),
    Column("from", "from", colour=True),
    Column("to", "to", colour=True),
    Column("event", "event"),  # the lifecycle table's name for the move (gateway.lifecycle)
    Column("detail", "detail", flexible=True),
)


def _detail(detail: Any) -> str:
    if not detail:
        return ""
    if isinstance(detail, dict):
        return " ".join(f"{k}={v}" for k, v in detail.items() if not isinstance(v, list | dict) or v)
    return str(detail)


def _history_rows(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "at": (h["at"] or "")[:19].replace("T", " "),
            "entity": h.get("entity", ""),
            "from": h["from"] or "",
            "to": h["to"],
            "event": h.get("event") or "",
            "detail": _detail(h.get("detail")),
        }
        for h in history
    ]


def when(value: str | None) -> str | None:
    """An ISO timestamp from a view as ``2026-11-26 17:24:28 UTC`` (views keep full ISO for scripts)."""
    return f"{value[:19].replace('T', ' ')} UTC" if value else None


def heading(session: Session, text: str) -> None:
    session.write()
    session.write(session.painter.bold(text))


def history(session: Session, items: list[dict[str, Any]], title: str = "history") -> None:
    if not items:
        return
    heading(session, title)
    columns: tuple[Column, ...] = HISTORY_COLUMNS
    if len({h.get("entity") for h in items}) == 1:
        columns = tuple(c for c in HISTORY_COLUMNS if c.key != "entity")
    session.lines(render_table(_history_rows(items), columns, width=session.width, painter=session.painter))


def segments(session: Session, block: dict[str, Any], *, elements: bool) -> None:
    if block.get("segments_omitted"):
        return
    session.write()
    segs = block.get("segments")
    if segs is None:
        session.write("  (segments not available: the stored payload is missing or not X12)")
        return
    width = session.width
    painter = session.painter
    for seg in segs:
        prefix = f"{seg['position']:>4} {seg['loop']:<6} "
        line = prefix + seg["text"]
        if len(line) + 3 + len(seg["name"]) <= width and seg["name"]:
            line = f"{line}  {painter.dim(seg['name'])}"
        session.write(line)
        if not elements:
            continue
        for el in seg["elements"]:
            room = max(16, min(NAME_ROOM, width - 22 - len(el["value"])))
            session.write(f"{' ' * 12}{el['id']:<8}{clip(el['name'], room).ljust(room)}  {el['value']}")


def set_block(session: Session, block: dict[str, Any], *, elements: bool) -> None:
    painter = session.painter
    ic, group = block["interchange"], block["group"]
    title = (
        f"{block['set_id']} ST02 {block['control_number']}  {block['direction']} {block['partner']}  "
        f"file {block['file']['id']} {block['file']['name']}"
    )
    heading(session, clip(title, session.width))
    session.lines(
        render_pairs(
            [
                (
                    "interchange",
                    f"ISA13 {ic.get('control_number')} "
                    f"{ic.get('sender') or ''} -> {ic.get('receiver') or ''}",
                ),
                (
                    "group",
                    f"GS06 {group.get('control_number')} "
                    f"{group.get('functional_id') or ''} {group.get('version') or ''}",
                ),
                ("acknowledgment", _ack_text(block, painter)),
                ("state", block.get("state")),
                ("trace numbers", ", ".join(block.get("trace_numbers") or [])),
                ("tracking number", block.get("tracking_number")),
                *(
                    ("related" if i == 0 else "", related_line(rel, painter))
                    for i, rel in enumerate(block.get("related", []))
                ),
            ],
            width=session.width,
        )
    )
    history(session, block.get("history", []), "set history")
    segments(session, block, elements=elements)


def _ack_text(block: dict[str, Any], painter: Painter) -> str | None:
    """The TA1/999 verdicts recorded for a set (None for files that expect none, like our own 999s)."""
    if block.get("set_row_id") is None:
        return None
    codes = (
        ("TA1", block["interchange"].get("ack_status")),
        ("999 group", block["group"].get("ack_status")),
        ("999 set", block.get("ack_status")),
    )
    return " ".join(f"{level} {painter.state(code)}" for level, code in codes if code) or "none received"


def related_line(rel: dict[str, Any], painter: Painter) -> str:
    kind = rel["relation"]
    if kind == "request" and "set_row_id" not in rel:
        return f"request {rel['tracking_number']}"
    if kind == "acknowledgment":
        return (
            f"{rel['kind']} {painter.state(rel['ack_status'] or '')} in file {rel['file_id']} {rel['file']}"
        )
    code = painter.state(rel.get("ack_status") or rel.get("state") or "")
    what = f"{kind} {rel.get('set_id')} ST02 {rel.get('control_number')} {code}"
    if kind == "acknowledges":
        return f"{what} {rel.get('tracking_number') or ''} (set:{rel.get('set_row_id')})"
    return f"{what} (set:{rel.get('set_row_id')}) file {rel.get('file_id')}"


def show(session: Session, view: dict[str, Any], *, elements: bool) -> None:
    """Render a ``log show`` view (request, file or set subject)."""
    subject = view["subject"]
    if subject == "request":
        _request_head(session, view)
    elif subject == "file":
        _file_head(session, view)
    for block in view["transactions"]:
        set_block(session, block, elements=elements)


def _request_head(session: Session, view: dict[str, Any]) -> None:
    req = view["request"]
    painter = session.painter
    session.write(
        painter.bold(f"request {req['tracking_number']}")
        + f"  ({req['kind']}, {painter.state(req['state'])})"
    )
    patient = view.get("patient") or {}
    people = []
    for role in ("subscriber", "dependent"):
        p = patient.get(role)
        if p:
            people.append(
                (
                    role,
                    " ".join(
                        str(p.get(k))
                        for k in ("last_name", "first_name", "member_id", "birth_date")
                        if p.get(k)
                    ),
                )
            )
    source = req.get("source_file")
    session.lines(
        render_pairs(
            [
                ("client reference", req.get("client_reference")),
                ("payer / partner", f"{req['payer_id']} via {req['partner']}"),
                ("reason", req.get("reason")),
                ("created", when(req.get("created_at"))),
                ("due", when(req.get("due_at"))),
                (
                    "api call" if source and source.get("source") == "api" else "inbox file",
                    f"file {source['id']} {source['name']} ({source['state']})" if source else None,
                ),
                *people,
            ],
            width=session.width,
        )
    )
    result = view.get("result")
    if result:
        heading(session, f"{result['kind']}: {painter.state(result['status'])}")
        dates = f"{result.get('effective_from') or ''}..{result.get('effective_to') or ''}"
        session.lines(
            render_pairs(
                [
                    ("certification", result.get("certification_number")),
                    ("effective", dates if dates != ".." else None),
                ],
                width=session.width,
            )
        )
        for event in result.get("events", []):
            at = (event["at"] or "")[:19].replace("T", " ")
            cert = f"  cert {event['certification_number']}" if event.get("certification_number") else ""
            session.write(f"  {at}  {event['from'] or '-'} -> {painter.state(event['to'])}{cert}")
    history(session, view["history"], "request history")
    core_view.render(session, view.get("http_exchanges", []))


def _file_head(session: Session, view: dict[str, Any]) -> None:
    f = view["file"]
    painter = session.painter
    session.write(
        painter.bold(f"file {f['id']} {f['name']}")
        + f"  ({f['direction']} {f['partner']}, {painter.state(f['state'])})"
    )
    acknowledges = view.get("acknowledges_file")
    pairs: list[tuple[str, Any]] = [
        ("reason", f.get("reason")),
        ("size", f"{f['size']} bytes"),
        ("sha256", f["sha256"]),
        ("acknowledges", f"file {acknowledges}" if acknowledges else None),
    ]
    pairs += [
        ("quarantined", f"{q.get('at', '')[:19]} {q.get('reason')}") for q in view.get("quarantine", [])
    ]
    pairs += [
        (
            "request",
            f"{r['tracking_number']} {r['kind']} {r.get('client_reference') or ''} "
            f"{painter.state(r['state'])}",
        )
        for r in view.get("requests", [])
    ]
    pairs += [
        ("interchange", f"ISA13 {ic['control_number']} without groups, TA1 {ic.get('ack_status') or '-'}")
        for ic in view.get("interchanges_without_sets", [])
    ]
    session.lines(render_pairs(pairs, width=session.width))
    history(session, view["history"], "file history")
    core_view.render(session, view.get("http_exchanges", []))


def _validation_line(doc: dict[str, Any]) -> str | None:
    """The response's acknowledgment verdict, with the errors our 999 reported (codes, no data)."""
    validation = doc["authorization"].get("validation")
    if not validation:
        return None
    findings = (doc.get("record") or {}).get("findings") or []
    errors = [
        f"{f.get('segment')}{'/' + str(f['element']) if f.get('element') else ''} {f.get('code')}"
        for f in findings
        if f.get("severity", "error") == "error"
    ]
    return f"{validation}: {', '.join(errors[:5])}" if errors else str(validation)


def authorization(session: Session, doc: dict[str, Any]) -> None:
    """Render ``auth show``."""
    painter = session.painter
    auth = doc["authorization"]
    session.write(
        painter.bold(f"authorization {auth['tracking_number']}") + f"  {painter.state(auth['status'])}"
    )
    req = doc.get("request") or {}
    session.lines(
        render_pairs(
            [
                ("certification", auth.get("certification_number")),
                ("effective", f"{auth.get('effective_from') or ''}..{auth.get('effective_to') or ''}"),
                (
                    "action / reason",
                    " ".join(
                        str(auth.get(k)) for k in ("action_code", "reason_code", "reason") if auth.get(k)
                    ),
                ),
                ("admin reference", auth.get("admin_reference")),
                ("payer trace", auth.get("payer_trace_number")),
                ("our 999 verdict", _validation_line(doc)),
                (
                    "review",
                    " ".join(
                        str(auth.get(k))
                        for k in ("request_category", "certification_type", "service_type")
                        if auth.get(k)
                    ),
                ),
                (
                    "event dates",
                    f"{auth.get('event_from') or ''}..{auth.get('event_to') or ''}"
                    if auth.get("event_from")
                    else None,
                ),
                ("diagnoses", ", ".join(auth.get("diagnoses") or [])),
                ("messages", " / ".join(auth.get("messages") or [])),
                ("client reference", req.get("client_reference")),
                ("payer / partner", f"{req.get('payer_id')} via {req.get('partner')}" if req else None),
                (
                    "patient",
                    " ".join(str(req.get(k)) for k in ("patient", "member_id", "birth_date") if req.get(k)),
                ),
            ],
            width=session.width,
        )
    )
    heading(session, "events")
    for event in doc["events"]:
        at = (event["at"] or "")[:19].replace("T", " ")
        cert = f"  cert {event['certification_number']}" if event.get("certification_number") else ""
        session.write(f"  {at}  {event['from'] or '-'} -> {painter.state(event['to'])}{cert}")
    heading(session, "service lines")
    rows = [
        {
            "line": i,
            "procedure": " ".join(
                x
                for x in (
                    s.get("procedure_code") or s.get("revenue_code"),
                    "-".join(s.get("modifiers") or []),
                )
                if x
            ),
            "qty": f"{s.get('quantity') or ''} {s.get('unit') or ''}".strip(),
            "status": s.get("status"),
            "level": s.get("decision_level"),
            "cert": s.get("certification_number"),
            "dates": f"{s.get('service_from') or ''}..{s.get('service_to') or ''}",
            "reason": s.get("reason") or s.get("reason_code"),
        }
        for i, s in enumerate(doc["services"], 1)
    ]
    columns = (
        Column("#", "line", right=True),
        Column("procedure", "procedure"),
        Column("qty", "qty"),
        Column("status", "status", colour=True),
        Column("decided at", "level"),
        Column("cert", "cert"),
        Column("dates", "dates", flexible=True),
        Column("reason", "reason", flexible=True),
    )
    session.lines(render_table(rows, columns, width=session.width, painter=painter) if rows else ["  (none)"])
