"""An incident's review as markdown: what happened, what polymon decided and why, how
long the scope was paused, which trades it affected, who responded and when, and what was
learned.

Pure, without Kafka or Faust (``polymon ctl incident-report`` imports it): the API's
incident view and audit entries in, text out (also ``GET /api/incidents/{id}/review``).

Trades affected: the runners' trade envelopes on audit.log (kind trade) whose scope is the
incident's or one it covers (a pause of it would cover: ``bot:b1`` covers
``bot:b1/market:m7``, ``market:m7`` covers ``bot:b2/market:m7``) with an event time from
:data:`TRADE_LEAD_S` before the opening to the resolution (or now). Computed when asked,
from the audit tail the caller has: the incident record itself does not store them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from streams.scopes import ScopeError, ancestors

# trades this long before an incident opened count as affected: its cause (a breaching
# fill, a stale book) comes before the alert that opens it
TRADE_LEAD_S = 60.0
MAX_TRADES_LISTED = 100  # in a review and an incident's view; the rest are counted


def _when(time_ms: int | None) -> str:
    if time_ms is None:
        return "—"
    return datetime.fromtimestamp(time_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _after(time_ms: int | None, opened_ms: int) -> str:
    return "" if time_ms is None else f" (+{_duration((time_ms - opened_ms) / 1000)})"


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _cell(text: Any) -> str:
    """Text that stays inside one markdown table cell."""
    value = "—" if text is None or text == "" else str(text)
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _table(header: tuple[str, ...], rows: Iterable[tuple[Any, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return lines


def pause_spans(timeline: Iterable[Mapping[str, Any]],
                now_ms: int) -> list[tuple[int, int | None, str, str]]:
    """(paused at, resumed at or None, how, by whom) per pause of the incident's scope."""
    spans: list[tuple[int, int | None, str, str]] = []
    open_at: tuple[int, str, str] | None = None
    for entry in timeline:
        what = entry["what"]
        if what.startswith("scope paused") and open_at is None:
            open_at = (entry["time_ms"], what.removeprefix("scope paused").strip(" ()"),
                       entry["actor"])
        elif what.startswith("scope resumed") and open_at is not None:
            spans.append((open_at[0], entry["time_ms"], open_at[1], open_at[2]))
            open_at = None
    if open_at is not None:
        spans.append((open_at[0], None, open_at[1], open_at[2]))
    return spans


def incident_review(incident: Mapping[str, Any], decisions: Iterable[Mapping[str, Any]],
                    now_ms: int, trades: Iterable[Mapping[str, Any]] = ()) -> str:
    """The review of ``incident`` (an API incident view); ``decisions`` are the audit
    entries of its scope during the incident, oldest first; ``trades`` the trade entries
    it affected (:func:`trades_during`)."""
    opened = incident["opened_ms"]
    lines = [f"# Incident review: {incident['incident_id']}", ""]
    lines += _table(("field", "value"), [
        ("Scope", incident["scope"]),
        ("Reason", f"{incident['reason_code']} (family {incident['reason_family']})"),
        ("Severity", incident["severity"]),
        ("State", incident["state"]),
        ("Opened", _when(opened)),
        ("Acknowledged", f"{_when(incident.get('acknowledged_ms'))} by "
         f"{incident.get('acknowledged_by') or '—'}"
         f"{_after(incident.get('acknowledged_ms'), opened)}"
         if incident.get("acknowledged_ms") is not None else "not acknowledged"),
        ("Resolved", f"{_when(incident.get('resolved_ms'))} by "
         f"{incident.get('resolved_by') or '—'}{_after(incident.get('resolved_ms'), opened)}"
         if incident.get("resolved_ms") is not None else "not resolved"),
        ("Alerts", f"{incident['alerts']} fired, {incident['firing_alerts']} still firing"),
    ])
    lines += ["", "## Root cause", "", incident.get("root_cause") or "_Not recorded._", ""]
    follow_ups = incident.get("follow_ups") or []
    lines += ["## Follow-ups", ""]
    lines += [f"- [ ] {item}" for item in follow_ups] or ["_None recorded._"]

    timeline = incident.get("timeline") or []
    lines += ["", "## Timeline", ""]
    lines += _table(("time", "after opening", "who", "what", "ref"), [
        (_when(e["time_ms"]), _duration((e["time_ms"] - opened) / 1000), e["actor"],
         e["what"], e.get("ref")) for e in timeline])
    if incident.get("timeline_dropped"):
        lines.append(f"\n{incident['timeline_dropped']} older entries were dropped.")

    lines += ["", "## Decisions and their causes", ""]
    alerts = [e for e in timeline if e["what"].startswith("alert ")]
    rows = [(_when(e["time_ms"]), "alert", e["what"], e["actor"], e.get("ref"))
            for e in alerts]
    for entry in decisions:
        evidence = entry.get("evidence") or {}
        cause = evidence.get("cause_id") or evidence.get("alert_id") \
            or evidence.get("command_id")
        rows.append((_when(entry["time_ms"]), entry["action"],
                     f"{entry['decision']} ({entry['reason_code']})", entry["actor"], cause))
    rows.sort(key=lambda row: row[0])
    lines += _table(("time", "kind", "decision", "by", "cause"), rows) if rows \
        else ["_No decisions recorded._"]

    lines += ["", "## Pauses", ""]
    spans = pause_spans(timeline, now_ms)
    lines += _table(("paused", "resumed", "for", "how", "by"), [
        (_when(start), _when(end) if end is not None else "still paused",
         _duration(((end if end is not None else now_ms) - start) / 1000), how, actor)
        for start, end, how, actor in spans]) if spans else ["_The scope was not paused._"]
    lines += ["", "## Trades affected", ""]
    lines += _trades_section(list(trades), opened)
    return "\n".join(lines) + "\n"


def _trades_section(trades: list[Mapping[str, Any]], opened_ms: int) -> list[str]:
    if not trades:
        return [f"_No trade reported for the scope from {TRADE_LEAD_S:g} s before the "
                "opening to the resolution._"]
    shown = trades[:MAX_TRADES_LISTED]
    lines = _table(
        ("time", "vs opening", "scope", "runner", "order", "side", "size", "price", "filled",
         "fill price", "model", "reason", "envelope"),
        [(_when(t["event_time_ms"]), _offset((t["event_time_ms"] - opened_ms) / 1000),
          t["scope"], t["trade"]["runner_id"], t["trade"]["order_id"], t["trade"]["side"],
          f"{t['trade']['size']:g}", f"{t['trade']['price']:g}",
          f"{t['trade']['filled_size']:g}", _number(t["trade"]["fill_price"]),
          t["trade"]["model_version"], t["reason_code"], t["envelope_id"]) for t in shown])
    if len(trades) > len(shown):
        lines.append(f"\n{len(trades) - len(shown)} more trades are not listed.")
    return lines


def _offset(seconds: float) -> str:
    return f"-{_duration(-seconds)}" if seconds < 0 else f"+{_duration(seconds)}"


def _number(value: float | None) -> str | None:
    return None if value is None else f"{value:g}"


def covers(incident_scope: str, scope: str) -> bool:
    """Whether a pause of ``incident_scope`` would cover ``scope``."""
    try:
        return incident_scope in ancestors(scope)
    except ScopeError:
        return False


def trades_during(incident: Mapping[str, Any], entries: Iterable[Mapping[str, Any]],
                  now_ms: int, lead_s: float = TRADE_LEAD_S) -> list[dict[str, Any]]:
    """The trade entries (audit entries of kind trade) the incident affected: of its
    scope or one it covers, with an event time from ``lead_s`` before its opening to its
    resolution (or ``now_ms``); oldest first, each envelope once (a re-delivered report
    repeats its id)."""
    start = incident["opened_ms"] - int(lead_s * 1000)
    end = incident.get("resolved_ms") or now_ms
    found: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if (entry.get("kind") == "trade" and start <= entry["event_time_ms"] <= end
                and covers(incident["scope"], entry["scope"])):
            found.setdefault(entry["envelope_id"], dict(entry))
    return sorted(found.values(), key=lambda e: (e["event_time_ms"], e["envelope_id"]))


def trade_links(trades: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The trades an incident affected, as its view lists them: envelope ids (at most
    :data:`MAX_TRADES_LISTED`, oldest first) and how many there are in all."""
    return {"envelope_ids": [t["envelope_id"] for t in trades[:MAX_TRADES_LISTED]],
            "count": len(trades), "lead_s": TRADE_LEAD_S}


def decisions_during(incident: Mapping[str, Any], audit: Iterable[Mapping[str, Any]],
                     now_ms: int) -> list[dict[str, Any]]:
    """The audit entries of the incident's scope from its opening to its resolution
    (decisions only: trades are :func:`trades_during`'s)."""
    end = incident.get("resolved_ms") or now_ms
    return sorted((dict(entry) for entry in audit
                   if entry["scope"] == incident["scope"] and entry.get("kind") != "trade"
                   and incident["opened_ms"] <= entry["time_ms"] <= end),
                  key=lambda entry: entry["time_ms"])
