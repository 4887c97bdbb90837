"""Every worker's read view of polymon's decisions: the compacted topics control.pauses,
monitor.incidents and control.rollout read whole, and the tail of audit.log.

Why: tables hold only a worker's own partitions, but these topics are small, compacted
and keyed by what the API lists (scope, incident id), so each worker reads all of their
partitions with a group-less consumer and answers list requests on its own, with no
routing. The audit tail is also how a mutation learns its outcome: the agent that applies
an operator command audits it with the command id, and the API waits for that entry.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Mapping
from typing import Any

from streams.codec import AvroCodec, CodecError
from streams.control.divergence import PauseView
from streams.control.pause_acks import PauseLog, PublishedPause
from streams.web.api import audit_view, incident_view, pause_view, rollout_view

log = logging.getLogger(__name__)
COMPACTED = ("control.pauses", "monitor.incidents", "control.rollout")
TAILED = "audit.log"
MAX_OUTCOMES = 5000


class ReadModel:
    def __init__(self, codecs: Mapping[str, AvroCodec], audit_tail: int = 1000,
                 pause_view: PauseView | None = None,
                 pause_log: PauseLog | None = None) -> None:
        self.codecs = codecs
        self.pauses: dict[str, dict[str, Any]] = {}
        # the paused scopes, for the fill check (streams.agents.divergence)
        self.pause_view = pause_view if pause_view is not None else PauseView()
        self.incidents: dict[str, dict[str, Any]] = {}
        self.rollout: dict[str, dict[str, Any]] = {}
        self.audit: deque[dict[str, Any]] = deque(maxlen=max(audit_tail, 1))
        # the runners' trades on audit.log, apart: a busy runner must not push the
        # decisions out of the tail (each keeps up to audit_tail entries)
        self.trades: deque[dict[str, Any]] = deque(maxlen=max(audit_tail, 1))
        self._trade_ids: set[str] = set()  # a re-delivered report (same id) is listed once
        self.outcomes: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.caught_up = asyncio.Event()
        self.pause_view.caught_up = self.caught_up.is_set
        # control.pauses by partition and offset, for the runners' acknowledgements
        # (streams.agents.pause_acks)
        self.pause_log = pause_log if pause_log is not None else PauseLog()
        self.pause_log.caught_up = self.caught_up.is_set
        # the kind of the last failure (an exception's class: its text may carry hosts
        # or records, and goes to the log only)
        self.last_error_kind: str | None = None
        self._waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self.applied = 0

    # --- applying records ---------------------------------------------------------------

    def apply(self, topic: str, key: bytes | None, value: bytes | None, partition: int = -1,
              offset: int = -1, timestamp_ms: int | None = None) -> None:
        """One message of ``topic`` (its default name, without prefix), at ``offset`` of
        ``partition`` (-1: unknown), written at ``timestamp_ms``."""
        text_key = key.decode(errors="replace") if key is not None else ""
        if topic == TAILED:
            if value is not None:
                self._apply_audit(self.codecs["ReportEnvelope"].decode_record(value))
            return
        store = {"control.pauses": self.pauses, "monitor.incidents": self.incidents,
                 "control.rollout": self.rollout}[topic]
        if value is None:  # a tombstone
            store.pop(text_key, None)
            if topic == "control.pauses":
                self.pause_view.remove(text_key)
                if partition >= 0:
                    self.pause_log.note(PublishedPause(partition, offset, text_key, None,
                                                       False, timestamp_ms or 0))
            return
        if topic == "control.pauses":
            record = self.codecs["PauseState"].decode_record(value)
            store[record.scope] = pause_view(record)
            if partition >= 0:  # published when written: a state re-sent is new to runners
                self.pause_log.note(PublishedPause(
                    partition, offset, record.scope, record.state_id, record.paused,
                    max(record.updated_ms, timestamp_ms or 0)))
            self.pause_view.note(record.scope, record.paused, record.state_id,
                                 record.since_ms, record.reason_code, record.actor)
        elif topic == "control.rollout":
            record = self.codecs["RolloutState"].decode_record(value)
            store[record.scope] = rollout_view(record)
        else:
            envelope = self.codecs["ReportEnvelope"].decode_record(value)
            view = incident_view(envelope)
            store[view["incident_id"]] = view
        self.applied += 1

    def _apply_audit(self, envelope: Any) -> None:
        entry = audit_view(envelope)
        self.applied += 1
        if entry["kind"] == "trade":
            if entry["envelope_id"] in self._trade_ids:
                return
            if len(self.trades) == self.trades.maxlen:  # the oldest goes
                self._trade_ids.discard(self.trades[0]["envelope_id"])
            self.trades.append(entry)
            self._trade_ids.add(entry["envelope_id"])
            return
        self.audit.append(entry)
        command = entry["evidence"].get("command_id")
        if not command:  # the entry of an operator command names it in its evidence
            return
        self.outcomes[command] = entry
        self.outcomes.move_to_end(command)
        while len(self.outcomes) > MAX_OUTCOMES:
            self.outcomes.popitem(last=False)
        for waiter in self._waiters.pop(command, []):
            if not waiter.done():
                waiter.set_result(entry)

    # --- questions ------------------------------------------------------------------------

    def audit_entries(self) -> list[dict[str, Any]]:
        """The audit.log tail, decisions and trades together, newest first (by the time
        polymon or the runner recorded them)."""
        # from newest-first lists: entries of the same millisecond stay newest first
        return sorted([*reversed(self.audit), *reversed(self.trades)],
                      key=lambda e: e["time_ms"], reverse=True)

    async def wait_outcome(self, command_id: str, timeout_s: float) -> dict[str, Any] | None:
        """The audit entry of the command, waiting up to ``timeout_s`` for it."""
        if command_id in self.outcomes:
            return self.outcomes[command_id]
        if timeout_s <= 0:
            return None
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(command_id, []).append(waiter)
        try:
            return await asyncio.wait_for(waiter, timeout_s)
        except TimeoutError:
            return None
        finally:
            waiters = self._waiters.get(command_id, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(command_id, None)

    # --- the consumer -----------------------------------------------------------------------

    async def run(self, bootstrap: str, names: Mapping[str, str],
                  partitions: Mapping[str, int], client_id: str) -> None:
        """Read until cancelled; reconnect after errors. ``names``: default → real name."""
        while True:
            try:
                await self._consume(bootstrap, names, partitions, client_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker went away: say so, try again
                self.last_error_kind = type(exc).__name__
                log.warning("read model: %r; reconnecting in 1s", exc)
                await asyncio.sleep(1.0)

    async def _consume(self, bootstrap: str, names: Mapping[str, str],
                       partitions: Mapping[str, int], client_id: str) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from streams.kafka_security import aiokafka_security

        by_real = {names[t]: t for t in (*COMPACTED, TAILED)}
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
            client_id=client_id, auto_offset_reset="earliest", **aiokafka_security(),
        )
        await consumer.start()
        try:
            tps = [TopicPartition(names[t], p) for t in (*COMPACTED, TAILED)
                   for p in range(partitions[t])]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            begins = await consumer.beginning_offsets(tps)
            tail = self.audit.maxlen or 1
            starts = {tp: max(begins[tp], ends[tp] - tail) if by_real[tp.topic] == TAILED
                      else begins[tp] for tp in tps}
            for tp, start in starts.items():
                consumer.seek(tp, start)
            self._reset()
            for tp in tps:
                if by_real[tp.topic] == "control.pauses":
                    self.pause_log.set_end(tp.partition, ends[tp])
            pending = {tp for tp in tps if ends[tp] > starts[tp]}
            if not pending:
                self.caught_up.set()
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=2000)
                for tp, messages in batch.items():
                    for message in messages:
                        try:
                            self.apply(by_real[tp.topic], message.key, message.value,
                                       tp.partition, message.offset, message.timestamp)
                        except (CodecError, ValueError, KeyError, AssertionError) as exc:
                            log.warning("read model: skipping %s[%d]@%d: %s", tp.topic,
                                        tp.partition, message.offset, exc)
                if pending:
                    for tp in list(pending):
                        if await consumer.position(tp) >= ends[tp]:
                            pending.discard(tp)
                    if not pending:
                        self.caught_up.set()
                        self.last_error_kind = None
        finally:
            await consumer.stop()

    def _reset(self) -> None:
        """Start over (after a reconnect the topics are read again from the start)."""
        self.caught_up.clear()
        self.pauses.clear()
        self.pause_view.clear()
        self.pause_log.clear()
        self.incidents.clear()
        self.rollout.clear()
        self.audit.clear()
        self.trades.clear()
        self._trade_ids.clear()
