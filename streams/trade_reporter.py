"""TradeReporter: what a trading runner uses to put its trades on polymon's audit log.

A runner cannot write ``audit.log`` (only the worker does: whoever writes it could forge
decisions). It reports each order and fill as a trade envelope (a ReportEnvelope with a
TradePayload) on ``exec.trades``; the worker checks it and appends it to audit.log
unchanged, where ``/api/audit?kind=trade`` and the incident reviews show it next to
polymon's decisions: one log, one auditor.

The envelope id derives from runner id, order id and filled size, so reporting the same
fill again (a retry after a timeout, a restart) is the same envelope: readers dedupe by
id. A report that breaks the contract (wrong scope, size, side, reason code...) raises
ValueError in the caller before anything is sent (the rules: streams/trades.py).

Sent with ``acks=all`` and idempotence; ``report`` only queues (it never blocks on the
broker), ``flush`` waits for delivery and raises :class:`TradeDeliveryError` naming the
envelopes the broker did not take. Like PauseGuard it needs only the ``runner`` extra's
packages (confluent-kafka, fastavro, pydantic). Example::

    with TradeReporter("127.0.0.1:9092", runner_id="r1") as trades:
        trades.report("bot:b1/market:m7", order_id="o-17", side="BUY", size=10,
                      price=0.42, filled_size=10, fill_price=0.43, model_version="v2")
        trades.flush(5.0)
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from streams.avro import AvroCodec, SchemaCatalog
from streams.records import ReportEnvelope, TradeSide
from streams.scopes import SCOPE_ID
from streams.tracing import TRACEPARENT, parse_traceparent
from streams.trades import DEFAULT_TRADE_REASON, TRADES_TOPIC, trade_envelope

log = logging.getLogger(__name__)
_RUNNER_ID = re.compile(SCOPE_ID)


class TradeDeliveryError(RuntimeError):
    """The broker did not take some trade envelopes: report them again (same ids)."""

    def __init__(self, failed: dict[str, str]) -> None:
        self.failed = dict(failed)  # envelope id -> error
        shown = ", ".join(f"{eid}: {error}" for eid, error in list(failed.items())[:5])
        more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
        super().__init__(f"{len(failed)} trade envelope(s) not delivered: {shown}{more}")


class TradeReporter:
    """Publishes a runner's trade envelopes to ``<topic_prefix>exec.trades``.

    ``producer_config``: more librdkafka settings (security: ``security.protocol``,
    ``sasl.*``, ``ssl.*``), as PauseGuard's ``consumer_config``. ``config_version``: the
    runner's version or configuration hash, recorded in every envelope. ``clock_ms``: the
    runner's clock (ms since the epoch), for observed and default event times."""

    def __init__(self, bootstrap: str, runner_id: str, topic_prefix: str = "", *,
                 config_version: str = "", schema_registry_url: str | None = None,
                 producer_config: Mapping[str, Any] | None = None,
                 clock_ms: Callable[[], int] | None = None) -> None:
        if not _RUNNER_ID.fullmatch(runner_id):
            raise ValueError(f"runner_id {runner_id[:80]!r}: 1 to 128 of A-Z a-z 0-9 _ . -")
        self.runner_id = runner_id
        self.topic = f"{topic_prefix}{TRADES_TOPIC}"
        self.config_version = config_version
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        catalog = SchemaCatalog(registry_url=schema_registry_url)
        self._codec = AvroCodec(catalog["ReportEnvelope"], catalog)
        self._config = {
            "bootstrap.servers": bootstrap, "client.id": f"polymon-trades-{runner_id}",
            # a trade is on the log once every in-sync replica has it, and a retry of the
            # client's own never duplicates it
            "acks": "all", "enable.idempotence": True, "linger.ms": 5,
            **dict(producer_config or {}),
        }
        self._producer: Producer | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._failed: dict[str, str] = {}

    # -- building (no broker) --------------------------------------------------------------

    def envelope(self, scope: str, order_id: str, side: TradeSide | str, size: float,
                 price: float, filled_size: float = 0.0, fill_price: float | None = None,
                 model_version: str | None = None, reason_code: str = DEFAULT_TRADE_REASON,
                 event_time_ms: int | None = None,
                 traceparent: str | None = None) -> ReportEnvelope:
        """The trade envelope ``report`` would send, checked (ValueError if it breaks the
        contract, e.g. a scope that is not ``bot:<id>/market:<id>`` or ``market:<id>``,
        ``filled_size`` above ``size``, or a traceparent that is not W3C's)."""
        trace_id = span_id = None
        if traceparent is not None:
            context = parse_traceparent(traceparent)
            if context is None:
                raise ValueError(f"traceparent {traceparent[:80]!r} is not a W3C "
                                 "traceparent (00-<32 hex>-<16 hex>-<2 hex>)")
            trace_id, span_id = context.trace_id, context.span_id
        now = self._clock_ms()
        return trade_envelope(
            runner_id=self.runner_id, scope=scope, order_id=order_id, side=side, size=size,
            price=price, filled_size=filled_size, fill_price=fill_price,
            model_version=model_version, reason_code=reason_code, observed_ms=now,
            event_time_ms=now if event_time_ms is None else event_time_ms,
            config_version=self.config_version, trace_id=trace_id, cause_span_id=span_id)

    # -- sending ---------------------------------------------------------------------------

    def report(self, scope: str, order_id: str, side: TradeSide | str, size: float,
               price: float, filled_size: float = 0.0, fill_price: float | None = None,
               model_version: str | None = None, reason_code: str = DEFAULT_TRADE_REASON,
               event_time_ms: int | None = None, traceparent: str | None = None) -> str:
        """Queue one trade report; returns its envelope id. Raises ValueError for a report
        that breaks the contract (nothing is sent), RuntimeError once closed."""
        envelope = self.envelope(scope, order_id, side, size, price, filled_size, fill_price,
                                 model_version, reason_code, event_time_ms, traceparent)
        value = self._codec.encode_record(envelope)
        headers = [(TRACEPARENT, traceparent.strip(" \t").encode())] if traceparent else None
        producer = self._open()
        envelope_id = envelope.envelope_id

        def delivered(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                log.warning("trade envelope %s not delivered: %s", envelope_id, error)
                with self._lock:
                    self._failed[envelope_id] = str(error)

        for attempt in range(2):
            try:
                producer.produce(self.topic, key=scope.encode(), value=value,
                                 headers=headers, on_delivery=delivered)
                break
            except BufferError:  # the local queue is full: let deliveries drain, once
                if attempt:
                    raise
                producer.poll(1.0)
        producer.poll(0)
        return envelope_id

    def flush(self, timeout: float = 10.0) -> int:
        """Wait up to ``timeout`` s for the queued reports; returns how many are still
        queued. Raises TradeDeliveryError for reports the broker refused or that timed
        out (each may be reported again: same id)."""
        remaining = self._producer.flush(timeout) if self._producer is not None else 0
        with self._lock:
            failed, self._failed = self._failed, {}
        if failed:
            raise TradeDeliveryError(failed)
        return remaining

    def close(self, timeout: float = 10.0) -> int:
        """Flush (bounded by ``timeout``) and stop taking reports; returns how many were
        left undelivered."""
        if self._closed:
            return 0
        self._closed = True
        try:
            remaining = self.flush(timeout)
        except TradeDeliveryError as exc:
            log.error("trade reporter closed: %s", exc)
            remaining = len(exc.failed)
        if remaining:
            log.error("trade reporter closed with %d trade envelope(s) undelivered",
                      remaining)
        self._producer = None  # its threads end with it (no reconnecting once closed)
        return remaining

    def __enter__(self) -> TradeReporter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _open(self) -> Producer:
        if self._closed:
            raise RuntimeError("TradeReporter is closed")
        if self._producer is None:  # made on first use: building envelopes needs none
            self._producer = Producer(self._config)
        return self._producer


__all__ = ["TradeDeliveryError", "TradeReporter"]
