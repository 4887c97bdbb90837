"""Trade envelopes: a runner's trade report (a ReportEnvelope with a TradePayload) on
``exec.trades``, the rules it must follow, and its deterministic id.

The worker alone writes audit.log (streams/acls.py): whoever writes it could forge
decisions. So a runner writes its trades to ``exec.trades``; the worker's trades agent
checks each one with :func:`trade_problem` and appends it to audit.log unchanged. The
runner's :class:`streams.trade_reporter.TradeReporter` builds envelopes with
:func:`trade_envelope`, which applies the same rules, so a bad report fails in the runner
with a ValueError before anything is sent.

The rules, and why:

- the payload is a TradePayload: alerts, incidents and audit entries are polymon's
  decisions, which a runner cannot write;
- the scope is a trade's: ``bot:<id>/market:<id>`` or ``market:<id>``;
- ``source`` is ``runner:<payload.runner_id>``: the entry names who reported it;
- ``reason_code`` is ``EXEC_TRADE`` or the runner's own ``EXEC_*`` code, never another
  registered code (a trade reported as EXEC_SLIPPAGE_BREACH would read as polymon's
  decision); severity INFO; ``dedup_key`` ``<scope>|trade``;
- ``envelope_id`` is derived from runner id, order id and filled size
  (:func:`trade_envelope_id`): a retried report is the same envelope (readers dedupe by
  id), and a runner cannot choose an id that collides with a decision's.

Pure and light (streams.records, streams.envelope, streams.scopes only): it runs in the
runner's process, which holds only the ``runner`` extra's packages.
"""

from __future__ import annotations

import re

from streams.envelope import derive_id
from streams.reason_codes import REASON_CODES, Severity
from streams.records import ReportEnvelope, TradePayload, TradeSide
from streams.scopes import ScopeError, parse_scope

TRADES_TOPIC = "exec.trades"
# what an audit.log entry is: the audit of an alert's or an incident's decision, any other
# decision (pause, resume, rollout, operator command), or a runner's trade report. Disjoint
# from the scope kinds, so /api/audit's and `polymon ctl audit`'s kind takes either.
RECORD_KINDS = ("alert", "incident", "audit", "trade")
DEFAULT_TRADE_REASON = "EXEC_TRADE"
TRADE_FAMILY = "trade"
SOURCE_PREFIX = "runner:"
TRADE_REASON_PATTERN = r"^EXEC_[A-Z0-9_]{1,60}$"
_TRADE_REASON = re.compile(TRADE_REASON_PATTERN)
# the scope shapes a trade may have: a bot's market, or a market
TRADE_SCOPE_SHAPES = (("bot", "market"), ("market",))


def trade_envelope_id(runner_id: str, order_id: str, filled_size: float) -> str:
    """The id of a runner's report of an order at a filled size: the same report always
    has the same id."""
    return derive_id("trade", runner_id, order_id, repr(float(filled_size)))


def trade_dedup_key(scope: str) -> str:
    return f"{scope}|{TRADE_FAMILY}"


def trade_scope_problem(scope: str) -> str | None:
    try:
        segments = parse_scope(scope)
    except ScopeError as exc:
        return f"scope: {exc}"
    if tuple(kind for kind, _ in segments) not in TRADE_SCOPE_SHAPES:
        return (f"scope {scope!r} is not a trade's scope (bot:<id>/market:<id> or "
                "market:<id>)")
    return None


def trade_reason_problem(reason_code: str) -> str | None:
    if not _TRADE_REASON.fullmatch(reason_code):
        return (f"reason_code {reason_code[:80]!r} is not a runner's trade code "
                f"({DEFAULT_TRADE_REASON}, or EXEC_ and 1 to 60 of A-Z 0-9 _)")
    if reason_code in REASON_CODES and reason_code != DEFAULT_TRADE_REASON:
        return (f"reason_code {reason_code} is one of polymon's decision codes: a trade "
                f"report uses {DEFAULT_TRADE_REASON} or the runner's own EXEC_* code")
    return None


def trade_problem(envelope: ReportEnvelope) -> str | None:
    """Why ``envelope`` is not a runner's trade report as exec.trades takes it, or None."""
    payload = envelope.payload
    if not isinstance(payload, TradePayload):
        return (f"exec.trades carries trade reports (TradePayload), got "
                f"{type(payload).__name__}: a runner cannot write polymon's decisions "
                "(alerts, incidents, audit entries)")
    problem = trade_scope_problem(envelope.scope) or trade_reason_problem(envelope.reason_code)
    if problem:
        return problem
    if envelope.source != SOURCE_PREFIX + payload.runner_id:
        return (f"source {envelope.source[:80]!r} is not the reporting runner's "
                f"({SOURCE_PREFIX}{payload.runner_id})")
    if envelope.severity is not Severity.INFO:
        return f"severity {envelope.severity.value}: a trade report is INFO"
    if envelope.dedup_key != trade_dedup_key(envelope.scope):
        return (f"dedup_key {envelope.dedup_key[:80]!r} is not the trade's "
                f"({trade_dedup_key(envelope.scope)!r})")
    expected = trade_envelope_id(payload.runner_id, payload.order_id, payload.filled_size)
    if envelope.envelope_id != expected:
        return (f"envelope_id {envelope.envelope_id[:80]!r} is not derived from runner, "
                f"order and filled size ({expected})")
    return None


def trade_envelope(*, runner_id: str, scope: str, order_id: str, side: TradeSide | str,
                   size: float, price: float, filled_size: float = 0.0,
                   fill_price: float | None = None, model_version: str | None = None,
                   reason_code: str = DEFAULT_TRADE_REASON, observed_ms: int,
                   event_time_ms: int, config_version: str, trace_id: str | None = None,
                   cause_span_id: str | None = None) -> ReportEnvelope:
    """A runner's trade report, checked: raises ValueError (naming the field) if it
    breaks the contract or a rule of :func:`trade_problem`."""
    side = side.upper() if isinstance(side, str) else side
    payload = TradePayload(order_id=order_id, runner_id=runner_id, side=side, size=size,
                           price=price, filled_size=filled_size, fill_price=fill_price,
                           model_version=model_version)
    problem = trade_scope_problem(scope) or trade_reason_problem(reason_code)
    if problem:
        raise ValueError(problem)
    envelope = ReportEnvelope(
        envelope_id=trade_envelope_id(runner_id, order_id, filled_size),
        source=SOURCE_PREFIX + runner_id, reason_code=reason_code, severity=Severity.INFO,
        scope=scope, dedup_key=trade_dedup_key(scope), observed_time_ms=observed_ms,
        event_time_ms=event_time_ms, config_version=config_version, trace_id=trace_id,
        cause_span_id=cause_span_id, payload=payload)
    problem = trade_problem(envelope)
    if problem:  # the rules above cover it; kept so the two can never disagree
        raise ValueError(problem)
    return envelope
