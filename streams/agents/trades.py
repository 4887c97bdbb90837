"""The runners' trade reports: every record of exec.trades is checked
(streams.trades.trade_problem) and appended to audit.log unchanged, its bytes as the
runner wrote them, keyed by its scope, so audit.log is the one log of decisions and
trades, written by the worker alone. A record that is not a runner's trade report (an
alert, incident or audit payload, a wrong scope, source, reason code or id, an event time
outside the accepted skew and age, as every input's) is dead-lettered with its bytes and
the reason; nothing else is decided here."""

from __future__ import annotations

from streams.agents.decoding import InvalidInput, consume
from streams.agents.health import check_event_time
from streams.agents.outputs import enqueue
from streams.app import clock, topics
from streams.codec import InputMessage
from streams.records import ReportEnvelope
from streams.trades import trade_problem


def on_trade(envelope: ReportEnvelope, message: InputMessage) -> None:
    problem = trade_problem(envelope)
    if problem is not None:
        raise InvalidInput(problem)
    check_event_time(envelope.event_time_ms, clock.now_ms())
    assert message.value is not None  # it decoded
    # queued with the batch's other output: sent before the batch's offsets are
    # acknowledged, so a trade is never lost (a re-delivery repeats its envelope id)
    enqueue(topics.audit, envelope.scope.encode(), bytes(message.value))


consume(topics.trades, "ReportEnvelope", on_trade)
