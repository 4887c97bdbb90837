"""`polymon ctl`: the operator's command line, a client of a worker's HTTP API.

It goes through the API rather than straight to ops.commands so that every action is
authenticated and authorized the same way (bearer token → actor and rights), validated
in one place, and answered with its outcome from audit.log. Inputs are checked locally
first, so a typo never leaves the machine.

Exit codes: 0 done (or accepted, outcome pending), 1 refused by polymon or the worker
cannot be reached, 2 bad input (locally, or the API's 400/404/409), 3 not authorized
(401/403).
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from streams.control.incidents import IncidentIdError, family_of
from streams.incident_review import decisions_during, incident_review, trades_during
from streams.records import MAX_FOLLOW_UPS, MAX_ID, MAX_TEXT, UNPRINTABLE, RolloutStage
from streams.scopes import GLOBAL, SCOPE_KINDS, ScopeError, parse_scope
from streams.settings import Settings
from streams.trades import RECORD_KINDS

EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2
EXIT_DENIED = 3
KINDS = (*sorted(SCOPE_KINDS), GLOBAL)  # of a scope's last segment, as the API's
STAGES = [stage.value for stage in RolloutStage]

ctl_cli = typer.Typer(
    no_args_is_help=True,
    help="Operate polymon through a worker's HTTP API: incidents, pauses, rollout.",
)
# No markup: every string printed comes from a worker (scopes, reasons, actors), and a
# "[...]" in one must print as written, not restyle the terminal. rich also drops control
# characters from what it prints.
out = Console(soft_wrap=True, markup=False)
err = Console(stderr=True, soft_wrap=True, markup=False)


class Ctx:
    url: str = ""
    token: str | None = None
    as_json: bool = False


ctx = Ctx()


def _fail(message: str, code: int) -> typer.Exit:
    err.print(Text("error:", style="red"), message, highlight=False)
    return typer.Exit(code)


@ctl_cli.callback()
def main(
    url: Annotated[str | None, typer.Option(help="worker URL (POLYMON_CTL_URL)")] = None,
    token: Annotated[str | None, typer.Option(
        help="bearer token (POLYMON_CTL_TOKEN; prefer the variable: options show in ps)")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the API's JSON")] = False,
) -> None:
    try:
        settings = Settings()
    except Exception as exc:
        raise _fail(f"invalid settings: {exc}", EXIT_BAD_INPUT) from exc
    ctx.url = (url or settings.ctl_url).rstrip("/")
    ctx.token = token or settings.ctl_token
    ctx.as_json = as_json
    if not ctx.url.startswith(("http://", "https://")):
        raise _fail(f"--url must start with http:// or https://, got {ctx.url!r}",
                    EXIT_BAD_INPUT)


# --- HTTP ------------------------------------------------------------------------------


def _escaped(character: str) -> str:
    # control characters (an ESC starts a terminal sequence) and format characters (bidi
    # overrides reorder what the operator reads) print as their escape
    if unicodedata.category(character) in ("Cc", "Cf"):
        return f"\\u{ord(character):04x}"
    return character


def printable(value: Any) -> Any:
    """``value`` (a worker's JSON) with every string fit for a terminal."""
    if isinstance(value, str):
        if value.isprintable():
            return value
        return "".join(map(_escaped, value))
    if isinstance(value, list):
        return [printable(item) for item in value]
    if isinstance(value, dict):
        return {printable(key): printable(item) for key, item in value.items()}
    return value


def _call(method: str, path: str, body: dict[str, Any] | None = None,
          params: dict[str, Any] | None = None, idempotency_key: str | None = None,
          timeout_s: float = 30.0) -> Any:
    query = {k: v for k, v in (params or {}).items() if v is not None}
    url = f"{ctx.url}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if ctx.token:
        headers["Authorization"] = f"Bearer {ctx.token}"
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return printable(json.loads(response.read() or b"null"))
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            message = json.loads(raw).get("error", raw.decode(errors="replace"))
        except (ValueError, AttributeError):
            message = raw.decode(errors="replace") or exc.reason
        message = printable(str(message))[:2000]
        code = {400: EXIT_BAD_INPUT, 404: EXIT_BAD_INPUT, 409: EXIT_BAD_INPUT,
                401: EXIT_DENIED, 403: EXIT_DENIED}.get(exc.code, EXIT_REFUSED)
        raise _fail(f"{method} {path}: HTTP {exc.code}: {message}", code) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _fail(f"cannot reach {ctx.url}: {reason}", EXIT_REFUSED) from None


# --- local validation -------------------------------------------------------------------


def _scope(value: str) -> str:
    try:
        parse_scope(value)
    except ScopeError as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from None
    return value


def _stage(value: str | None) -> str | None:
    if value is None:
        return None
    if value.upper() not in STAGES:
        raise _fail(f"stage {value!r} is not one of {', '.join(s.lower() for s in STAGES)}",
                    EXIT_BAD_INPUT)
    return value.upper()


def _incident(value: str) -> str:
    try:
        family_of(value)
    except IncidentIdError as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from None
    return value


def _reason(value: str, option: str = "--reason") -> str:
    if not value.strip():
        raise _fail(f"{option} must not be empty: it is recorded in audit.log", EXIT_BAD_INPUT)
    if len(value) > MAX_TEXT:
        raise _fail(f"{option}: at most {MAX_TEXT} characters, got {len(value)}",
                    EXIT_BAD_INPUT)
    unprintable = re.search(f"[{UNPRINTABLE}]", value)
    if unprintable is not None:
        raise _fail(f"{option}: control and bidi characters are not allowed (U+"
                    f"{ord(unprintable[0]):04X} at {unprintable.start()})", EXIT_BAD_INPUT)
    return value.strip()


# --- output -----------------------------------------------------------------------------


def _time(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def _table(*columns: str) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column)
    return table


def _report(reply: dict[str, Any]) -> None:
    """A mutation's 202 reply: the outcome, or that it is pending."""
    if ctx.as_json:
        _print_json(reply)
    outcome = reply.get("outcome")
    what = f"{reply['action']} {reply['scope']}" + (f" {reply['target']}" if reply.get(
        "target") else "")
    if outcome is None:
        err.print(f"{what}: accepted as command {reply['command_id']}, outcome pending "
                  f"(polymon ctl command {reply['command_id']})", highlight=False)
        return
    evidence = outcome.get("evidence", {})
    detail = (evidence.get("detail") or evidence.get("refused_because")
              or evidence.get("summary") or "")
    line = f"{what}: {outcome['decision']}" + (f" ({detail})" if detail else "")
    if not ctx.as_json:
        out.print(line, highlight=False)
        if outcome.get("before") is not None or outcome.get("after") is not None:
            out.print(f"  before: {json.dumps(outcome.get('before'))}", highlight=False)
            out.print(f"  after:  {json.dumps(outcome.get('after'))}", highlight=False)
        out.print(f"  command {reply['command_id']} by {reply['actor']}", highlight=False)
    if outcome["decision"] == "refused":
        raise _fail(f"{what} refused: {detail}", EXIT_REFUSED)


KeyOption = Annotated[str | None, typer.Option(
    "--idempotency-key", help="command id: repeating it repeats nothing")]
ReasonOption = Annotated[str, typer.Option(help="why (recorded in audit.log)")]


# --- reads ------------------------------------------------------------------------------


@ctl_cli.command()
def status() -> None:
    """The workers of the group, and what needs attention."""
    workers = _call("GET", "/api/workers")
    incidents = _call("GET", "/api/incidents", params={"state": "open,acknowledged"})
    pauses = _call("GET", "/api/pauses", params={"paused": "true"})
    if ctx.as_json:
        _print_json({"workers": workers, "incidents": incidents["counts"],
                     "paused": pauses["paused"]})
        return
    for member in workers["members"]:
        out.print(f"worker {member['url']}: partitions {member['partitions']}",
                  highlight=False)
    counts = incidents["counts"]
    out.print(f"incidents: {counts['OPEN']} open, {counts['ACKNOWLEDGED']} acknowledged, "
              f"{counts['RESOLVED']} resolved", highlight=False)
    out.print(f"paused scopes: {', '.join(pauses['paused']) or 'none'}", highlight=False)


@ctl_cli.command()
def incidents(
    state: Annotated[str | None, typer.Option(
        help="comma list: open, acknowledged, resolved")] = "open,acknowledged",
    scope: Annotated[str | None, typer.Option(help="this scope and those it covers")] = None,
    limit: Annotated[int, typer.Option(min=1, max=5000)] = 100,
) -> None:
    """The incident queue."""
    reply = _call("GET", "/api/incidents", params={
        "state": state or None, "scope": _scope(scope) if scope else None, "limit": limit})
    if ctx.as_json:
        _print_json(reply)
        return
    table = _table("incident", "severity", "state", "scope", "family", "firing", "opened",
                   "acknowledged by")
    for i in reply["incidents"]:
        table.add_row(i["incident_id"], i["severity"], i["state"], i["scope"],
                      i["reason_family"], f"{i['firing_alerts']}/{i['alerts']}",
                      _time(i["opened_ms"]), i["acknowledged_by"] or "-")
    out.print(table)


@ctl_cli.command()
def incident(incident_id: Annotated[str, typer.Argument(help="inc-<family>-<hex>")]) -> None:
    """One incident and its timeline."""
    reply = _call("GET", f"/api/incidents/{_incident(incident_id)}")
    if ctx.as_json:
        _print_json(reply)
        return
    out.print(f"{reply['incident_id']}  {reply['severity']}  {reply['state']}  "
              f"{reply['scope']}  ({reply['reason_family']})", highlight=False)
    for entry in reply["timeline"]:
        out.print(f"  {_time(entry['time_ms'])}  {entry['what']}  — {entry['actor']}",
                  highlight=False)


@ctl_cli.command("incident-report")
def incident_report(
    incident_id: Annotated[str, typer.Argument(help="inc-<family>-<hex>")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="write the markdown here instead of printing it")] = None,
) -> None:
    """The incident's review as markdown: timeline, decisions and their causes, pauses
    and their durations, root cause, follow-ups."""
    incident = _call("GET", f"/api/incidents/{_incident(incident_id)}")
    audit = _call("GET", "/api/audit", params={"scope": incident["scope"], "limit": 5000})
    now = int(time.time() * 1000)
    decisions = decisions_during(incident, reversed(audit["entries"]), now)
    trades = trades_during(incident, audit["entries"], now)
    text = incident_review(incident, decisions, now, trades)
    if ctx.as_json:
        _print_json({"incident_id": incident["incident_id"], "markdown": text})
    elif output is not None:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise _fail(f"cannot write {output}: {exc.strerror}", EXIT_BAD_INPUT) from None
        err.print(f"wrote {output}", highlight=False)
    else:
        print(text, end="")


@ctl_cli.command()
def pauses(
    scope: Annotated[str | None, typer.Option(help="this scope and those it covers")] = None,
    paused_only: Annotated[bool, typer.Option("--paused", help="only paused scopes")] = False,
) -> None:
    """Pause state per scope (control.pauses)."""
    reply = _call("GET", "/api/pauses", params={
        "scope": _scope(scope) if scope else None, "paused": "true" if paused_only else None})
    if ctx.as_json:
        _print_json(reply)
        return
    table = _table("scope", "paused", "reason", "policy", "actor", "since")
    for name, p in reply["pauses"].items():
        table.add_row(name, "PAUSED" if p["paused"] else "running", p["reason_code"] or "-",
                      p["policy"], p["actor"], _time(p["since_ms"]))
    out.print(table)


@ctl_cli.command()
def rollout(
    scope: Annotated[str | None, typer.Option(help="this scope and those it covers")] = None,
) -> None:
    """The rollout ladder of every model and strategy (control.rollout)."""
    reply = _call("GET", "/api/rollout", params={"scope": _scope(scope) if scope else None})
    if ctx.as_json:
        _print_json(reply)
        return
    table = _table("scope", "stage", "ladder", "version", "re-evaluation", "updated")
    for name, r in reply["rollout"].items():
        ladder = " ".join(f"[{s}]" if s == r["stage"] else s.lower() for s in STAGES)
        mark = r.get("reevaluation")
        table.add_row(name, r["stage"], ladder, r["model_version"] or "-",
                      f"REQUIRED ({mark['model_version']} since {_time(mark['since_ms'])})"
                      if mark else "-", _time(r["updated_ms"]))
    out.print(table)


@ctl_cli.command()
def freshness(
    scope: Annotated[str | None, typer.Option(help="this scope and those it covers")] = None,
    stale: Annotated[bool, typer.Option("--stale", help="only stale feeds")] = False,
) -> None:
    """Data freshness and gap counts per scope and feed (every worker)."""
    reply = _call("GET", "/api/freshness", params={
        "scope": _scope(scope) if scope else None, "stale": "true" if stale else None})
    if ctx.as_json:
        _print_json(reply)
        return
    table = _table("scope", "feed", "age s", "threshold s", "stale", "missing seq", "paused by")
    for name, row in sorted(reply["scopes"].items()):
        for feed, f in row["feeds"].items():
            table.add_row(name, feed, f"{f['age_s']:.1f}", f"{f['threshold_s']:g}",
                          "STALE" if f["stale"] else "ok", str(f["missing"]),
                          row.get("paused_by") or "-")
    out.print(table)
    if not reply["complete"]:
        err.print("warning: not every partition answered (a worker is down or rebalancing)")


@ctl_cli.command()
def heartbeats(
    scope: Annotated[str | None, typer.Option(help="this scope and those it covers")] = None,
) -> None:
    """Heartbeat health per bot and market (every worker)."""
    reply = _call("GET", "/api/heartbeats", params={"scope": _scope(scope) if scope else None})
    if ctx.as_json:
        _print_json(reply)
        return
    table = _table("scope", "age s", "limit s", "healthy", "paused by")
    for name, h in sorted(reply["scopes"].items()):
        table.add_row(name, f"{h['age_s']:.1f}", f"{h['limit_s']:g}",
                      "ok" if h["healthy"] else "MISSED", h.get("paused_by") or "-")
    out.print(table)


@ctl_cli.command()
def runners() -> None:
    """Trading runners and their pause acknowledgements: lag behind control.pauses, the
    oldest pause not applied, silence (every worker)."""
    reply = _call("GET", "/api/runners")
    if ctx.as_json:
        _print_json(reply)
        return
    table = _table("runner", "version", "guard", "last ack s", "lag", "lag s",
                   "oldest unapplied", "state")

    def num(value: float | None, spec: str = ".1f") -> str:
        return "-" if value is None else format(value, spec)

    for name, r in sorted(reply["runners"].items()):
        oldest = r.get("oldest_unapplied")
        if r["never_acknowledged"]:
            state = "SILENT (required, never acknowledged)" if r["silent"] \
                else "never acknowledged"
        else:
            state = ", ".join(code for code in sorted(r.get("alerts") or {})) or (
                "SILENT" if r["silent"] else "ok")
        table.add_row(name, r.get("runner_version") or "-", r.get("guard_state") or "-",
                      num(r["last_ack_age_s"]), num(r["lag_records"], "d"), num(r["lag_s"]),
                      f"{oldest['scope']} {oldest['state_id']} ({oldest['age_s']:.1f}s)"
                      if oldest else "-", state)
    out.print(table)


@ctl_cli.command()
def audit(
    kind: Annotated[str | None, typer.Option(
        help=f"a record kind ({', '.join(RECORD_KINDS)}) or a scope kind "
             f"({', '.join(KINDS)})")] = None,
    scope: Annotated[str | None, typer.Option(help="this scope and those it covers")] = None,
    action: Annotated[str | None, typer.Option(
        help="e.g. pause, resume, promote, alert, incident, trade")] = None,
    limit: Annotated[int, typer.Option(min=1, max=5000)] = 50,
) -> None:
    """Recent audit.log entries, newest first: polymon's decisions and the runners'
    trades."""
    if kind is not None and kind not in RECORD_KINDS and kind not in KINDS:
        raise _fail(f"--kind {kind!r} is neither a record kind ({', '.join(RECORD_KINDS)}) "
                    f"nor a scope kind ({', '.join(KINDS)})", EXIT_BAD_INPUT)
    reply = _call("GET", "/api/audit", params={
        "kind": kind, "scope": _scope(scope) if scope else None, "action": action,
        "limit": limit})
    if ctx.as_json:
        _print_json(reply)
        return
    table = _table("time", "kind", "scope", "action", "decision", "by", "detail")
    for entry in reply["entries"]:
        table.add_row(_time(entry["time_ms"]), entry["kind"], entry["scope"],
                      entry["action"], entry["decision"], entry["actor"], _detail(entry))
    out.print(table)


def _detail(entry: dict[str, Any]) -> str:
    trade = entry.get("trade")
    if not trade:
        return entry["reason_code"]
    fill = (f", filled {trade['filled_size']:g}"
            + (f" @ {trade['fill_price']:g}" if trade["fill_price"] is not None else ""))
    model = f", model {trade['model_version']}" if trade["model_version"] else ""
    return (f"order {trade['order_id']}: {trade['side']} {trade['size']:g} @ "
            f"{trade['price']:g}{fill}{model} ({entry['reason_code']})")


@ctl_cli.command()
def command(command_id: Annotated[str, typer.Argument(help="the command id")]) -> None:
    """The outcome of an operator command."""
    reply = _call("GET", f"/api/commands/{urllib.parse.quote(command_id, safe='')}")
    if ctx.as_json:
        _print_json(reply)
        return
    outcome = reply["outcome"]
    out.print(f"{outcome['action']} {outcome['scope']}: {outcome['decision']} by "
              f"{outcome['actor']} at {_time(outcome['time_ms'])}", highlight=False)


# --- mutations --------------------------------------------------------------------------


@ctl_cli.command()
def pause(scope: Annotated[str, typer.Argument(help="e.g. market:m1, bot:b1, global")],
          reason: ReasonOption, idempotency_key: KeyOption = None) -> None:
    """Pause a scope (and every scope it covers)."""
    _report(_call("POST", f"/api/scopes/{_scope(scope)}/pause", {"reason": _reason(reason)},
                  idempotency_key=idempotency_key))


@ctl_cli.command()
def resume(scope: Annotated[str, typer.Argument(help="the paused scope")],
           reason: ReasonOption, idempotency_key: KeyOption = None) -> None:
    """Resume a scope: every hold goes, latched ones included."""
    _report(_call("POST", f"/api/scopes/{_scope(scope)}/resume", {"reason": _reason(reason)},
                  idempotency_key=idempotency_key))


@ctl_cli.command()
def rollback(scope: Annotated[str, typer.Argument(help="model:<id> or strategy:<id>")],
             to: Annotated[str, typer.Option("--to", help="the earlier stage")],
             reason: ReasonOption, idempotency_key: KeyOption = None) -> None:
    """Roll a model or strategy back to an earlier stage."""
    body = {"reason": _reason(reason), "to_stage": _stage(to)}
    _report(_call("POST", f"/api/scopes/{_scope(scope)}/rollback", body,
                  idempotency_key=idempotency_key))


@ctl_cli.command()
def promote(model: Annotated[str, typer.Argument(help="a model id, model:<id> or strategy:<id>")],
            reason: ReasonOption,
            to: Annotated[str | None, typer.Option("--to", help="the next stage (default: "
                                                   "one up)")] = None,
            idempotency_key: KeyOption = None) -> None:
    """Promote a model or strategy (the gates decide)."""
    if ":" in model:
        _scope(model)
    body = {"reason": _reason(reason), **({"to_stage": _stage(to)} if to else {})}
    _report(_call("POST", f"/api/rollout/{urllib.parse.quote(model, safe=':')}/promote", body,
                  idempotency_key=idempotency_key))


def _evaluation_ref(value: str, option: str) -> str:
    if not value.strip() or len(value) > MAX_ID:
        raise _fail(f"{option}: 1 to {MAX_ID} characters, got {len(value)}", EXIT_BAD_INPUT)
    unprintable = re.search(f"[{UNPRINTABLE}]", value)
    if unprintable is not None:
        raise _fail(f"{option}: control and bidi characters are not allowed (U+"
                    f"{ord(unprintable[0]):04X} at {unprintable.start()})", EXIT_BAD_INPUT)
    return value.strip()


@ctl_cli.command()
def evaluate(
    scope: Annotated[str, typer.Option("--scope", help="the model: model:<id> or a bare id")],
    version: Annotated[str, typer.Option("--version", help="the model version evaluated")],
    evaluation_id: Annotated[str, typer.Option("--evaluation-id",
                                               help="the evaluation's reference (a run id)")],
    passed: Annotated[bool, typer.Option("--passed/--failed",
                                         help="the evaluation's result")],
    reason: ReasonOption, idempotency_key: KeyOption = None) -> None:
    """Report an evaluation result of a model version: a passing one clears its
    REEVALUATION_REQUIRED mark (drift), a failing one is recorded and keeps it."""
    if ":" in scope:
        _scope(scope)
    body = {"reason": _reason(reason), "model_version": _evaluation_ref(version, "--version"),
            "evaluation_id": _evaluation_ref(evaluation_id, "--evaluation-id"),
            "result": "PASSED" if passed else "FAILED"}
    _report(_call("POST", f"/api/rollout/{urllib.parse.quote(scope, safe=':')}/evaluation",
                  body, idempotency_key=idempotency_key))


@ctl_cli.command()
def ack(incident_id: Annotated[str, typer.Argument(help="inc-<family>-<hex>")],
        reason: ReasonOption, idempotency_key: KeyOption = None) -> None:
    """Acknowledge an incident."""
    _report(_call("POST", f"/api/incidents/{_incident(incident_id)}/ack",
                  {"reason": _reason(reason)}, idempotency_key=idempotency_key))


@ctl_cli.command()
def resolve(
    incident_id: Annotated[str, typer.Argument(help="inc-<family>-<hex>")],
    reason: ReasonOption,
    root_cause: Annotated[str | None, typer.Option(
        help="what caused it (required for a CRITICAL incident)")] = None,
    follow_up: Annotated[list[str] | None, typer.Option(
        help="what will be done so it does not happen again; repeat for each (at least "
        "one for a CRITICAL incident)")] = None,
    idempotency_key: KeyOption = None,
) -> None:
    """Resolve an incident; a CRITICAL one with its root cause and follow-ups."""
    body: dict[str, Any] = {"reason": _reason(reason)}
    if root_cause is not None:
        body["root_cause"] = _reason(root_cause, "--root-cause")
    if follow_up:
        if len(follow_up) > MAX_FOLLOW_UPS:
            raise _fail(f"--follow-up: at most {MAX_FOLLOW_UPS}, got {len(follow_up)}",
                        EXIT_BAD_INPUT)
        body["follow_ups"] = [_reason(item, "--follow-up") for item in follow_up]
    _report(_call("POST", f"/api/incidents/{_incident(incident_id)}/resolve", body,
                  idempotency_key=idempotency_key))
