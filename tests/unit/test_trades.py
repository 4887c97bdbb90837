"""Trade envelopes (streams/trades.py) and the runner's TradeReporter without a broker:
what it builds, what it refuses before sending, and that the worker's codec and the
exec.trades rules accept what it writes."""

from __future__ import annotations

import pytest

from streams.codec import Codecs, SchemaCatalog
from streams.reason_codes import Severity
from streams.records import AlertPayload, AlertStatus, AuditPayload, ReportEnvelope, TradePayload
from streams.runner import TradeReporter
from streams.trades import trade_envelope_id, trade_problem

T0 = 1_790_000_000_000
WORKER_CODEC = Codecs(SchemaCatalog())["ReportEnvelope"]
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def reporter(**kwargs: object) -> TradeReporter:
    # nothing listens there: building an envelope needs no broker, and none is made
    return TradeReporter("127.0.0.1:9", "r1", clock_ms=lambda: T0, **kwargs)  # type: ignore[arg-type]


def fill(**changes: object) -> ReportEnvelope:
    fields: dict[str, object] = {"scope": "bot:b1/market:m7", "order_id": "o-1", "side": "buy",
                                 "size": 10.0, "price": 0.42, "filled_size": 4.0,
                                 "fill_price": 0.43, "model_version": "v2"}
    fields.update(changes)
    return reporter().envelope(**fields)  # type: ignore[arg-type]


def test_the_envelope_is_the_runners_trade_report() -> None:
    envelope = fill(event_time_ms=T0 - 50, traceparent=TRACEPARENT)
    assert envelope.payload == TradePayload(order_id="o-1", runner_id="r1", side="BUY",
                                            size=10.0, price=0.42, filled_size=4.0,
                                            fill_price=0.43, model_version="v2")
    assert (envelope.source, envelope.reason_code, envelope.severity.value) == (
        "runner:r1", "EXEC_TRADE", "INFO")
    assert envelope.scope == "bot:b1/market:m7"
    assert envelope.dedup_key == "bot:b1/market:m7|trade"
    assert (envelope.observed_time_ms, envelope.event_time_ms) == (T0, T0 - 50)
    assert envelope.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert envelope.cause_span_id == "00f067aa0ba902b7"
    assert trade_problem(envelope) is None
    # the worker's codec reads what the runner's writes, field for field
    runner_bytes = reporter()._codec.encode_record(envelope)
    assert WORKER_CODEC.decode_record(runner_bytes) == envelope


def test_a_retried_report_is_the_same_envelope_and_a_further_fill_another() -> None:
    first = fill()
    again = TradeReporter("127.0.0.1:9", "r1", clock_ms=lambda: T0 + 9_000).envelope(
        "bot:b1/market:m7", "o-1", "BUY", 10.0, 0.42, filled_size=4.0, fill_price=0.43,
        model_version="v2")
    assert again.envelope_id == first.envelope_id == trade_envelope_id("r1", "o-1", 4)
    assert first.envelope_id.startswith("trade-")
    assert fill(filled_size=10.0).envelope_id != first.envelope_id
    assert fill(order_id="o-2").envelope_id != first.envelope_id
    other_runner = TradeReporter("127.0.0.1:9", "r2", clock_ms=lambda: T0)
    assert other_runner.envelope("bot:b1/market:m7", "o-1", "BUY", 10.0, 0.42,
                                 filled_size=4.0).envelope_id != first.envelope_id


def test_a_market_scope_and_the_runners_own_exec_code_are_taken() -> None:
    envelope = fill(scope="market:m7", reason_code="EXEC_REBALANCE")
    assert (envelope.scope, envelope.reason_code) == ("market:m7", "EXEC_REBALANCE")
    assert envelope.dedup_key == "market:m7|trade"


@pytest.mark.parametrize(("changes", "message"), [
    ({"scope": "bot:b1"}, "not a trade's scope"),
    ({"scope": "global"}, "not a trade's scope"),
    ({"scope": "model:m1"}, "not a trade's scope"),
    ({"scope": "market:m7/bot:b1"}, "not a trade's scope"),
    ({"scope": "market:"}, "scope: "),
    ({"filled_size": 11.0}, "exceeds size"),
    ({"size": 0.0}, "greater than 0"),
    ({"price": float("nan")}, "price"),
    ({"side": "HOLD"}, "side"),
    ({"reason_code": "EXEC_SLIPPAGE_BREACH"}, "one of polymon's decision codes"),
    ({"reason_code": "RISK_STALE_BOOK"}, "not a runner's trade code"),
    ({"reason_code": "EXEC_"}, "not a runner's trade code"),
    ({"traceparent": "00-xyz"}, "not a W3C traceparent"),
    ({"traceparent": "00-" + "0" * 32 + "-00f067aa0ba902b7-01"}, "not a W3C traceparent"),
])
def test_a_report_that_breaks_the_contract_is_refused_before_sending(
        changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fill(**changes)


def test_report_refuses_locally_and_opens_no_producer() -> None:
    trades = reporter()
    with pytest.raises(ValueError, match="not a trade's scope"):
        trades.report("global", "o-1", "BUY", 1.0, 0.5)
    assert trades._producer is None
    trades.close(0.1)
    with pytest.raises(RuntimeError, match="closed"):
        trades.report("market:m7", "o-1", "BUY", 1.0, 0.5)


def test_a_runner_id_outside_the_grammar_is_refused() -> None:
    with pytest.raises(ValueError, match="runner_id"):
        TradeReporter("127.0.0.1:9", "r 1")


# --- what the worker refuses on exec.trades (dead-lettered with this reason) -----------


def _other(payload: AlertPayload | AuditPayload) -> ReportEnvelope:
    return fill().model_copy(update={"payload": payload})


@pytest.mark.parametrize(("envelope", "message"), [
    (_other(AlertPayload(status=AlertStatus.FIRING, metric="m", message="forged")),
     "got AlertPayload: a runner cannot write polymon's decisions"),
    (_other(AuditPayload(action="resume", actor="operator:x", decision="resumed")),
     "got AuditPayload: a runner cannot write"),
    (fill().model_copy(update={"source": "runner:r2"}), "not the reporting runner's"),
    (fill().model_copy(update={"source": "agents.health"}), "not the reporting runner's"),
    (fill().model_copy(update={"severity": Severity.CRITICAL}), "a trade report is INFO"),
    (fill().model_copy(update={"dedup_key": "bot:b1/market:m7|execution"}),
     "dedup_key"),
    (fill().model_copy(update={"envelope_id": "audit-0123456789abcdef01234567"}),
     "not derived from runner, order and filled size"),
    (fill().model_copy(update={"scope": "bot:b1"}), "not a trade's scope"),
    (fill().model_copy(update={"reason_code": "GOV_OPERATOR_ACTION"}),
     "not a runner's trade code"),
])
def test_the_worker_refuses_what_is_not_a_runners_trade_report(
        envelope: ReportEnvelope, message: str) -> None:
    problem = trade_problem(envelope)
    assert problem is not None and message in problem
