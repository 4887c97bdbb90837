"""PauseGuard: the client library a trading runner embeds to obey polymon's pauses.

The guard reads the compacted ``control.pauses`` topic from the beginning (the
current pause state of every scope) and ``monitor.heartbeat`` (polymon's own
liveness) on a background thread, and answers ``allowed(scope)`` on the caller's
thread from memory: no network call per decision, it sits on the trading hot path.

It fails closed. A scope is denied, with the reason, while:

1. the guard is not running (not started, or stopped);
2. the broker is unreachable (librdkafka reported all brokers down, or a fatal or
   authentication error) until a fresh round trip to the broker succeeds again;
3. a ``control.pauses`` partition has no leader or its end offset cannot be read (the
   reason names the partition);
4. the guard has not caught up with ``control.pauses``: every partition read up to
   its high watermark, read again at least every ``heartbeat_max_age_s`` (partitions
   are listed again as often: added ones are read from the beginning);
5. polymon's heartbeat is older than ``heartbeat_max_age_s``, or none was seen; or a
   worker that beats reports its input stuck, or its heartbeats show input lag and no
   progress (its input offsets, or ``events_processed``, unchanged) for longer than
   ``heartbeat_max_age_s``;
6. the scope, or a scope covering it (``global`` > ``bot:<id>`` > ``market:<id>``,
   see ``streams.scopes.ancestors``), is paused, or its latest ``control.pauses``
   record did not decode (undecodable messages are logged, counted and skipped; a
   pause record that cannot be read must not let its scope trade).

A ``control.pauses`` record counts only when its key is its payload's scope (others
are logged, counted and ignored: a record under the wrong key could otherwise unpause
a scope), and per scope the newest by ``(updated_ms, state_id)`` wins, in whatever
order records arrive; a tombstone deletes its key.

Heartbeat age, per polymon worker, is the larger of (a) wall-clock now minus the
heartbeat's own ``time_ms`` and (b) the time since this guard received it
(monotonic clock). (a) makes heartbeats replayed from the compacted topic at start
count as old as they are; (b) keeps a worker whose clock runs ahead from looking
fresh after it stopped. The freshest worker counts: polymon is alive while any of
its workers beats. A worker whose clock runs behind by more than the bound makes
the guard fail closed: a safe failure, and the reason shows the age. Every worker
whose heartbeat is fresh must also show progress: one stuck worker leaves the scopes of
its partitions unwatched.

The pure part (``GuardState``, ``assess``, ``decide``) holds no Kafka and no clock;
``PauseGuard`` feeds it from a confluent-kafka consumer. It needs only what the
``runner`` extra lists (confluent-kafka, fastavro, pydantic): importing it loads
neither Faust nor the worker's codec, and changes nothing in the runner's import
system (tests/unit/test_runner_standalone.py). Example::

    # runner_id (optional): acknowledge what the guard applied on control.pause-acks, so
    # polymon alerts if this runner does not apply a pause in time
    with PauseGuard("127.0.0.1:9092", heartbeat_max_age_s=5.0, runner_id="bot-b1") as guard:
        guard.wait_ready(timeout=30)
        decision = guard.allowed("bot:b1/market:m7")
        if decision:
            place_order(...)
        else:
            log.info("not trading: %s", decision.reason)
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from types import TracebackType
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
)
from confluent_kafka import TopicPartition as KafkaTopicPartition
from pydantic import ValidationError

from streams import __version__
from streams.avro import AvroCodec, CodecError, SchemaCatalog
from streams.records import (
    MAX_APPLIED_PAUSES,
    AppliedPause,
    MonitorHeartbeat,
    PauseAck,
    PauseState,
    PauseWatermark,
)
from streams.scopes import ScopeError, ancestors

# re-exported: a runner's other client, its trade envelopes for the audit log
from streams.trade_reporter import TradeDeliveryError, TradeReporter  # noqa: F401

log = logging.getLogger(__name__)

PAUSES_TOPIC = "control.pauses"
HEARTBEAT_TOPIC = "monitor.heartbeat"
ACKS_TOPIC = "control.pause-acks"
# An acknowledgement follows newly applied control.pauses records, at most this often:
# a burst of records costs one ack, and polymon learns within a fraction of its bound.
ACK_COALESCE_S = 0.2
ACK_FLUSH_S = 2.0  # at stop, how long the last acknowledgements may take to leave
# The consumer's security keys carry over to the acknowledgement producer.
_SHARED_CONFIG_PREFIXES = ("security.", "sasl.", "ssl.", "enable.ssl", "client.",
                           "socket.", "broker.", "reconnect.", "metadata.", "api.version")
# Errors after which the guard no longer trusts what it has: the client lost every
# broker, or cannot talk to the cluster at all. A single broker of a cluster going
# away (_TRANSPORT) is not a loss: librdkafka moves on to the others, and should the
# partitions stop flowing, the heartbeat bound fails the guard closed anyway.
_LOST = frozenset({
    KafkaError._ALL_BROKERS_DOWN, KafkaError._AUTHENTICATION,
    KafkaError.SASL_AUTHENTICATION_FAILED,
})
_RETRY_S = 1.0  # between attempts to assign and to read end offsets
_CALL_TIMEOUT_S = 1.0  # per blocking broker call on the guard's thread: bounds stop()


class GuardState(StrEnum):
    """Why the guard allows or denies before any scope is looked at."""

    STOPPED = "stopped"
    BROKER_UNREACHABLE = "broker_unreachable"
    PARTITION_UNAVAILABLE = "partition_unavailable"
    CATCHING_UP = "catching_up"
    HEARTBEAT_STALE = "heartbeat_stale"
    READY = "ready"


@dataclass(frozen=True, slots=True)
class GuardStatus:
    """The guard's health at one instant. Truthy when scopes may be looked at.

    ``undecodable``: records skipped because they did not decode; ``misplaced``:
    control.pauses records ignored because their key is not their payload's scope."""

    state: GuardState
    reason: str
    heartbeat_age_s: float | None = None
    undecodable: int = 0
    misplaced: int = 0

    @property
    def ready(self) -> bool:
        return self.state is GuardState.READY

    def __bool__(self) -> bool:
        return self.ready


@dataclass(frozen=True, slots=True)
class Decision:
    """May the runner trade ``scope`` now? Truthy when allowed; ``reason`` says why (not)."""

    allowed: bool
    reason: str
    covering_scope: str | None = None
    # a pause's cause, so a runner's log line leads to the event that stopped it
    cause_id: str | None = None
    reason_code: str | None = None
    trace_id: str | None = None
    cause_events: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.allowed

    def __str__(self) -> str:
        return self.reason


@dataclass
class Beat:
    """The newest heartbeat of one polymon worker, and since when its input has stood
    still with lag (``progress_mono``: receipt of the last beat that showed progress or
    no lag)."""

    time_ms: int
    received_mono: float
    events_processed: int = 0
    input_lag: int | None = None
    healthy: bool = True
    unhealthy_reason: str | None = None
    # sum of the input partitions' next offsets: moves with every record taken, valid or
    # dead-lettered (events_processed counts only the valid ones)
    input_offset_sum: int | None = None
    progress_mono: float | None = None

    def progressed_since(self, known: Beat) -> bool:
        if self.input_offset_sum is not None and known.input_offset_sum is not None:
            return self.input_offset_sum != known.input_offset_sum
        return self.events_processed != known.events_processed

    def stalled_s(self, now_mono: float) -> float:
        """How long input lag has stood without progress (0: none, or lag unknown)."""
        if not self.input_lag or self.progress_mono is None:
            return 0.0
        return now_mono - self.progress_mono


def _version(state: PauseState) -> tuple[int, str]:
    return state.updated_ms, state.state_id


@dataclass
class PauseBook:
    """Everything the guard knows, as plain values; the consumer thread mutates it under
    the guard's lock and the callers' threads read it. No Kafka, no clock in here."""

    pauses: dict[str, PauseState] = field(default_factory=dict)
    paused: dict[str, bool] = field(default_factory=dict)
    # Scopes whose latest control.pauses record could not be decoded: denied (we cannot
    # tell whether they are paused) until a readable record or a tombstone replaces it.
    unreadable: dict[str, str] = field(default_factory=dict)
    # (updated_ms, state_id) of the state a tombstone deleted: an older record arriving
    # after the deletion must not bring it back.
    deleted: dict[str, tuple[int, str]] = field(default_factory=dict)
    heartbeats: dict[str, Beat] = field(default_factory=dict)
    # control.pauses partition -> offset to reach (None: end offsets not read yet), and
    # when (monotonic) those end offsets were read.
    targets: dict[int, int] | None = None
    targets_mono: float | None = None
    positions: dict[int, int] = field(default_factory=dict)
    # control.pauses partition -> why it cannot be read now (no leader, an error).
    unavailable: dict[int, str] = field(default_factory=dict)
    broker_error: str | None = None
    closed: str | None = "guard not started"
    waiting_for: str | None = None
    undecodable: int = 0
    misplaced: int = 0

    def apply_pause(self, scope: str, state: PauseState | None) -> bool:
        """A record (or a tombstone, None) of control.pauses keyed ``scope``; True when it
        changed what the guard holds. A record whose payload names another scope is
        ignored (counted in ``misplaced``); an older one than the scope's is ignored."""
        if state is not None and state.scope != scope:
            self.misplaced += 1
            return False
        self.unreadable.pop(scope, None)
        known = self.pauses.get(scope)
        if state is None:
            if known is None:
                return False
            self.deleted[scope] = _version(known)
            del self.pauses[scope]
            self.paused.pop(scope, None)
            return True
        floor = _version(known) if known is not None else self.deleted.get(scope)
        if floor is not None and _version(state) <= floor:
            return False  # the same record again, or one older than what is known
        self.deleted.pop(scope, None)
        self.pauses[scope] = state
        self.paused[scope] = state.paused
        return True

    def apply_unreadable(self, key: str, error: str) -> None:
        """A control.pauses record that did not decode: deny its scope (if the key is one)."""
        self.undecodable += 1
        try:
            ancestors(key)
        except ScopeError:
            return
        self.unreadable[key] = error

    def apply_heartbeat(self, worker_id: str, beat: Beat | None) -> None:
        """A heartbeat of a worker (None: its tombstone, the worker is gone). Progress is
        judged on receipt: the beat moved ``events_processed`` on, or shows no lag."""
        if beat is None:
            self.heartbeats.pop(worker_id, None)
            return
        known = self.heartbeats.get(worker_id)
        if known is not None and beat.time_ms < known.time_ms:
            return
        progressed = (known is None or known.progress_mono is None or not beat.input_lag
                      or beat.progressed_since(known))
        beat.progress_mono = beat.received_mono if progressed else known.progress_mono
        self.heartbeats[worker_id] = beat

    def set_targets(self, end_offsets: Mapping[int, tuple[int, int]],
                    read_mono: float) -> None:
        """The (low, high) watermarks of every control.pauses partition, read at
        ``read_mono``: read up to high."""
        self.targets = {p: high if high > low else 0 for p, (low, high) in end_offsets.items()}
        self.targets_mono = read_mono

    def consumed(self, partition: int, next_offset: int) -> None:
        self.positions[partition] = max(self.positions.get(partition, 0), next_offset)

    def lagging(self) -> list[int] | None:
        """Partitions not yet read to their target; None when targets are unknown."""
        if self.targets is None:
            return None
        return sorted(p for p, target in self.targets.items()
                      if self.positions.get(p, 0) < target)


def _age_s(beat: Beat, now_ms: int, now_mono: float) -> float:
    return max((now_ms - beat.time_ms) / 1000.0, now_mono - beat.received_mono)


def heartbeat_age_s(heartbeats: Mapping[str, Beat], now_ms: int,
                    now_mono: float) -> float | None:
    """Age of the freshest worker's heartbeat (see the module doc), None if none seen."""
    ages = [_age_s(beat, now_ms, now_mono) for beat in heartbeats.values()]
    return min(ages) if ages else None


def stuck_worker(heartbeats: Mapping[str, Beat], now_ms: int, now_mono: float,
                 max_age_s: float) -> str | None:
    """Why a worker whose heartbeat is fresh cannot be trusted (it reports itself
    unhealthy, or its input lag stood without progress for longer than ``max_age_s``);
    None when every fresh worker makes progress."""
    for worker, beat in sorted(heartbeats.items()):
        if _age_s(beat, now_ms, now_mono) > max_age_s:
            continue  # gone: its partitions move to the others, its beats age out
        if not beat.healthy:
            return f"polymon worker {worker} unhealthy: {beat.unhealthy_reason or 'no reason'}"
        stalled = beat.stalled_s(now_mono)
        if stalled > max_age_s:
            return (f"polymon worker {worker} made no progress for {stalled:.1f}s with input "
                    f"lag {beat.input_lag} (limit {max_age_s:g}s)")
    return None


def assess(book: PauseBook, now_ms: int, now_mono: float, heartbeat_max_age_s: float,
           pauses_topic: str = PAUSES_TOPIC,
           heartbeat_topic: str = HEARTBEAT_TOPIC) -> GuardStatus:
    """The guard's health from what it knows and the time: the fail-closed checks."""
    age = heartbeat_age_s(book.heartbeats, now_ms, now_mono)
    extra: dict[str, Any] = {"heartbeat_age_s": age, "undecodable": book.undecodable,
                             "misplaced": book.misplaced}
    if book.closed is not None:
        return GuardStatus(GuardState.STOPPED, book.closed, **extra)
    if book.broker_error is not None:
        return GuardStatus(GuardState.BROKER_UNREACHABLE,
                           f"broker unreachable: {book.broker_error}", **extra)
    if book.unavailable:
        detail = "; ".join(f"partition {p}: {why}" for p, why in sorted(book.unavailable.items()))
        return GuardStatus(GuardState.PARTITION_UNAVAILABLE,
                           f"{pauses_topic} unavailable ({detail})", **extra)
    lagging = book.lagging()
    read_age = None if book.targets_mono is None else now_mono - book.targets_mono
    if lagging is None or lagging or read_age is None or read_age > heartbeat_max_age_s:
        if book.waiting_for:
            detail = f" ({book.waiting_for})"
        elif lagging is None or read_age is None:
            detail = " (reading its end offsets)"
        elif lagging:
            detail = f" (partitions {', '.join(map(str, lagging))} behind)"
        else:
            detail = (f" (end offsets read {read_age:.1f}s ago, "
                      f"limit {heartbeat_max_age_s:g}s)")
        return GuardStatus(GuardState.CATCHING_UP, f"not caught up with {pauses_topic}{detail}",
                           **extra)
    if age is None:
        return GuardStatus(GuardState.HEARTBEAT_STALE,
                           f"no polymon heartbeat seen on {heartbeat_topic}", **extra)
    if age > heartbeat_max_age_s:
        return GuardStatus(GuardState.HEARTBEAT_STALE,
                           f"polymon heartbeat {age:.1f}s old (limit {heartbeat_max_age_s:g}s)",
                           **extra)
    stuck = stuck_worker(book.heartbeats, now_ms, now_mono, heartbeat_max_age_s)
    if stuck is not None:
        return GuardStatus(GuardState.HEARTBEAT_STALE, stuck, **extra)
    return GuardStatus(GuardState.READY, "ready", **extra)


def _describe(state: PauseState) -> str:
    since = datetime.fromtimestamp(state.since_ms / 1000, tz=UTC)
    detail = f"{state.reason_code or 'paused'} since {since:%Y-%m-%dT%H:%M:%SZ}"
    if state.cause_id:
        detail += f", cause {state.cause_id}"
    if state.trace_id:
        detail += f", trace {state.trace_id}"
    if state.cause_events:
        detail += f", input {state.cause_events[-1]}"
    return detail


def _paused(reason: str, covering: str, state: PauseState) -> Decision:
    return Decision(False, reason, covering, cause_id=state.cause_id,
                    reason_code=state.reason_code, trace_id=state.trace_id,
                    cause_events=tuple(state.cause_events))


@lru_cache(maxsize=4096)
def covering_scopes(scope: str) -> tuple[str, ...]:
    """``streams.scopes.ancestors``, cached: a runner asks about the same scopes per order."""
    return tuple(ancestors(scope))


def decide(scope: str, book: PauseBook, status: GuardStatus) -> Decision:
    """May ``scope`` trade? Health first (fail closed), then the pause hierarchy."""
    if not status.ready:
        return Decision(False, status.reason)
    try:
        covers = covering_scopes(scope)
    except ScopeError as exc:
        return Decision(False, f"invalid scope: {exc}")
    # The same answer as streams.control.pauses.is_paused, without re-parsing the scope.
    covering = next((c for c in covers if book.paused.get(c)), None)
    if covering is None:
        unreadable = next((c for c in covers if c in book.unreadable), None)
        if unreadable is not None:
            return Decision(False, f"pause state of {unreadable} undecodable: "
                            f"{book.unreadable[unreadable]}", unreadable)
        return Decision(True, "not paused")
    state = book.pauses[covering]
    detail = _describe(state)
    if covering == scope:
        return _paused(f"paused: {scope} ({detail})", covering, state)
    return _paused(f"paused by parent {covering} ({detail})", covering, state)


def pause_ack(book: PauseBook, runner_id: str, runner_version: str, guard_state: str,
              sent_ms: int, applied_ms: Mapping[str, int]) -> PauseAck:
    """What the guard has applied, as its acknowledgement on control.pause-acks: the next
    control.pauses offset read per partition, and the newest applied state of each paused
    scope (the most recently updated ones when there are more than the record holds)
    with when the guard applied it (``applied_ms``; unknown: ``sent_ms``)."""
    paused = sorted((st for st in book.pauses.values() if st.paused),
                    key=lambda st: (st.updated_ms, st.state_id), reverse=True)
    return PauseAck(
        runner_id=runner_id, runner_version=runner_version, guard_state=guard_state,
        sent_ms=sent_ms,
        watermarks=[PauseWatermark(partition=p, offset=o)
                    for p, o in sorted(book.positions.items())],
        applied=[AppliedPause(scope=st.scope, state_id=st.state_id, paused=st.paused,
                              updated_ms=st.updated_ms,
                              applied_ms=applied_ms.get(st.scope, sent_ms))
                 for st in paused[:MAX_APPLIED_PAUSES]],
    )


def producer_config_from(consumer_config: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of a guard's consumer configuration its acknowledgement producer shares:
    where and how to connect (security, SASL, TLS), not how to consume."""
    return {k: v for k, v in consumer_config.items()
            if k.startswith(_SHARED_CONFIG_PREFIXES) or k == "bootstrap.servers"}


OnChange = Callable[[str, PauseState | None], None]
OnHealth = Callable[[GuardStatus], None]


class PauseGuard:
    """Reads control.pauses and monitor.heartbeat on a background thread; ``allowed``
    answers from memory on the caller's thread.

    ``on_change(scope, state)`` fires for every change of a scope's pause state (None
    when a tombstone deleted it), including those replayed while catching up;
    ``on_health(status)`` fires when the guard's state (ready, catching up, heartbeat
    stale, broker unreachable, stopped) changes. Both run on the guard's thread: keep
    them short, and an exception in one is logged, not raised.

    With a ``runner_id`` (the id of scope ``runner:<id>``), the guard acknowledges what it
    applied on control.pause-acks, keyed by that id, from a thread of its own: right
    after it applies new control.pauses records (at most every 0.2 s) and every
    ``ack_interval_s`` otherwise (see ``pause_ack``). polymon then alerts when this
    runner has not applied a pause within its bound. The producer shares the consumer's
    security keys (``producer_config`` adds to them); its failures are logged and
    counted (``acks_sent``, ``ack_failures``), never raised, and never touch
    ``allowed``. Without a runner id nothing is published.
    """

    def __init__(self, bootstrap: str, topic_prefix: str = "",
                 heartbeat_max_age_s: float = 5.0,
                 on_change: OnChange | None = None,
                 on_health: OnHealth | None = None,
                 schema_registry_url: str | None = None,
                 consumer_config: Mapping[str, Any] | None = None,
                 runner_id: str | None = None, runner_version: str | None = None,
                 ack_interval_s: float = 1.0,
                 producer_config: Mapping[str, Any] | None = None) -> None:
        if heartbeat_max_age_s <= 0:
            raise ValueError("heartbeat_max_age_s must be > 0")
        if ack_interval_s <= 0:
            raise ValueError("ack_interval_s must be > 0")
        if runner_id is not None:
            try:
                ancestors(f"runner:{runner_id}")
            except ScopeError as exc:
                raise ValueError(f"runner_id {runner_id!r} is not a scope id: {exc}") from None
        self.runner_id = runner_id
        self.runner_version = (f"polymon-{__version__}" if runner_version is None
                               else f"polymon-{__version__}/{runner_version}")
        self.ack_interval_s = ack_interval_s
        self.acks_topic = f"{topic_prefix}{ACKS_TOPIC}"
        self.acks_sent = 0
        self.ack_failures = 0
        self.bootstrap = bootstrap
        self.pauses_topic = f"{topic_prefix}{PAUSES_TOPIC}"
        self.heartbeat_topic = f"{topic_prefix}{HEARTBEAT_TOPIC}"
        self.heartbeat_max_age_s = heartbeat_max_age_s
        self.on_change = on_change
        self.on_health = on_health
        catalog = SchemaCatalog(registry_url=schema_registry_url)
        self._pause_codec = AvroCodec(catalog["PauseState"], catalog)
        self._heartbeat_codec = AvroCodec(catalog["MonitorHeartbeat"], catalog)
        self._consumer_config = dict(consumer_config or {})
        self._producer_config = {**producer_config_from(self._consumer_config),
                                 **(producer_config or {})}
        self._ack_codec = AvroCodec(catalog["PauseAck"], catalog)
        self._ack_wanted = threading.Event()
        self._acks_stopping = threading.Event()
        self._ack_thread: threading.Thread | None = None
        # scope -> when (wall clock, ms) the guard applied its current state
        self._applied_ms: dict[str, int] = {}
        self._book = PauseBook()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_state: GuardState | None = None
        # End offsets and partitions are read again this often: targets never older than
        # the bound while the broker answers.
        self._refresh_s = max(0.1, heartbeat_max_age_s / 3)
        # Touched by the consumer thread only.
        self._assigned = False
        self._partitions: set[tuple[str, int]] = set()
        self._need_sync = True
        self._next_attempt = 0.0
        self._next_refresh = 0.0

    # -- the hot path ------------------------------------------------------------------

    def status(self) -> GuardStatus:
        with self._lock:
            return self._assess()

    def allowed(self, scope: str) -> Decision:
        """From memory and the clocks only: safe to call per order."""
        with self._lock:
            return decide(scope, self._book, self._assess())

    def paused_scopes(self) -> dict[str, PauseState]:
        """The scopes paused right now, with their state."""
        with self._lock:
            return {s: st for s, st in self._book.pauses.items() if st.paused}

    def _assess(self) -> GuardStatus:
        return assess(self._book, int(time.time() * 1000), time.monotonic(),
                      self.heartbeat_max_age_s, self.pauses_topic, self.heartbeat_topic)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> PauseGuard:
        if self._thread is not None:
            raise RuntimeError("PauseGuard already started")
        with self._lock:
            self._book.closed = None
        self._thread = threading.Thread(target=self._run, name="pause-guard", daemon=True)
        self._thread.start()
        if self.runner_id is not None:
            self._ack_thread = threading.Thread(target=self._run_acks,
                                                name="pause-guard-acks", daemon=True)
            self._ack_thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        started = time.monotonic()
        if self._thread is not None:
            self._thread.join(timeout_s)
        with self._lock:
            self._book.closed = "guard stopped"
        self._report_health()
        if self._ack_thread is not None:  # its last acknowledgement says "stopped"
            self._acks_stopping.set()
            self._ack_wanted.set()
            self._ack_thread.join(max(0.1, timeout_s - (time.monotonic() - started)))

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """Block until the guard is ready (caught up, heartbeat fresh, broker reachable);
        False if it is not within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self._assess().ready:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.1))
        # on_health hears of "ready" before the caller acts on it (the guard's thread may
        # not have reported the change yet); reported once either way
        self._report_health()
        return True

    def __enter__(self) -> PauseGuard:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- the consumer thread -------------------------------------------------------------

    def _run(self) -> None:
        consumer = Consumer({
            "bootstrap.servers": self.bootstrap,
            # Required by the client; with assign() there is no group join and no commit.
            "group.id": f"polymon-pause-guard-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 100,
            "reconnect.backoff.ms": 100,
            "reconnect.backoff.max.ms": 1000,
            "error_cb": self._on_error,
            "logger": logging.getLogger(f"{__name__}.rdkafka"),
            **self._consumer_config,
        })
        try:
            while not self._stopping.is_set():
                for message in consumer.consume(500, timeout=0.1):
                    self._handle(message)
                self._report_health()
                now = time.monotonic()
                due = not self._assigned or self._need_sync or now >= self._next_refresh
                if due and now >= self._next_attempt:
                    self._next_attempt = now + min(_RETRY_S, self._refresh_s)
                    self._refresh(consumer)
        except Exception:  # never die silently: the guard is then closed, with the reason
            log.exception("pause guard thread failed")
            with self._lock:
                self._book.closed = "guard thread failed (see log)"
            self._report_health()
        finally:
            consumer.close()

    def _on_error(self, error: KafkaError) -> None:
        """librdkafka's error callback; runs inside consume() on the guard's thread."""
        if error.code() in _LOST or error.fatal():
            with self._lock:
                first = self._book.broker_error is None
                self._book.broker_error = error.str()
            (log.warning if first else log.debug)("pause guard: %s", error.str())
            self._need_sync = True  # after the loss, re-read the end offsets before trusting
        else:
            log.debug("pause guard: %s", error.str())

    def _refresh(self, consumer: Consumer) -> None:
        """List both topics' partitions (assigning added ones, from the beginning) and read
        control.pauses' end offsets: the guard is caught up once it read that far. Also
        the proof that the broker answers again after a loss. A control.pauses partition
        without a leader, or whose end offset cannot be read, is named as unavailable."""
        started = time.monotonic()
        listed: dict[str, Any] = {}
        try:
            for topic in (self.pauses_topic, self.heartbeat_topic):
                described = consumer.list_topics(topic, timeout=_CALL_TIMEOUT_S).topics.get(topic)
                if described is None or described.error is not None or not described.partitions:
                    with self._lock:
                        self._book.waiting_for = f"waiting for topic {topic}"
                    return
                listed[topic] = described
        except KafkaException as exc:
            error = exc.args[0] if exc.args else exc
            with self._lock:
                self._book.broker_error = error.str() if isinstance(error, KafkaError) \
                    else str(error)
            self._need_sync = True
            return
        added = [KafkaTopicPartition(topic, p, OFFSET_BEGINNING)
                 for topic, described in listed.items() for p in sorted(described.partitions)
                 if (topic, p) not in self._partitions]
        if added:
            if self._assigned:
                log.info("pause guard: partitions added: %s",
                         ", ".join(f"{tp.topic}[{tp.partition}]" for tp in added))
            consumer.incremental_assign(added)
            self._partitions.update((tp.topic, tp.partition) for tp in added)
        self._assigned = True
        unavailable: dict[int, str] = {}
        offsets: dict[int, tuple[int, int]] = {}
        for p, meta in sorted(listed[self.pauses_topic].partitions.items()):
            if meta.error is not None:
                unavailable[p] = meta.error.str()
            elif meta.leader < 0:
                unavailable[p] = "no leader"
            else:
                try:
                    offsets[p] = consumer.get_watermark_offsets(
                        KafkaTopicPartition(self.pauses_topic, p), timeout=_CALL_TIMEOUT_S,
                        cached=False)
                except KafkaException as exc:
                    error = exc.args[0] if exc.args else exc
                    unavailable[p] = "end offset not read: " + (
                        error.str() if isinstance(error, KafkaError) else str(error))
        with self._lock:
            self._book.waiting_for = None
            # end offsets count from when the read began; every partition's or none
            self._book.unavailable = unavailable
            if not unavailable:
                self._book.set_targets(offsets, started)
            if self._book.broker_error is not None:
                log.info("pause guard: broker reachable again")
            self._book.broker_error = None
        if unavailable:
            log.debug("pause guard: %s partitions unavailable: %s", self.pauses_topic,
                      unavailable)
            return
        self._need_sync = False
        self._next_refresh = started + self._refresh_s

    def _handle(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                if message.topic() == self.pauses_topic:
                    with self._lock:
                        self._book.consumed(message.partition(), message.offset())
            elif (message.topic() == self.pauses_topic and message.partition() is not None
                  and message.partition() >= 0 and error.code() not in _LOST
                  and not error.fatal()):
                # a partition's own error: not ready until a refresh finds it readable
                with self._lock:
                    self._book.unavailable[message.partition()] = error.str()
                self._need_sync = True
            else:
                self._on_error(error)
            return
        if message.topic() == self.pauses_topic:
            self._handle_pause(message)
        else:
            self._handle_heartbeat(message)

    def _decode(self, codec: AvroCodec, message: Message) -> tuple[Any, str | None]:
        """(record, None), or (None, the error) for a message that does not decode."""
        try:
            return codec.decode_record(message.value()), None
        except (CodecError, ValidationError) as exc:
            log.warning("pause guard: skipping undecodable message %s[%d]@%d: %s",
                        message.topic(), message.partition(), message.offset(), exc)
            error = str(exc).splitlines()[0]
            return None, error

    def _handle_pause(self, message: Message) -> None:
        key = (message.key() or b"").decode(errors="replace")
        state: PauseState | None = None
        error: str | None = None
        if message.value() is not None:
            state, error = self._decode(self._pause_codec, message)
        with self._lock:
            self._book.consumed(message.partition(), message.offset() + 1)
            if error is not None:
                self._book.apply_unreadable(key, error)  # counted; its scope fails closed
                return
            if state is not None and state.scope != key:
                log.warning("pause guard: ignoring %s[%d]@%d: key %r is not its scope %r",
                            message.topic(), message.partition(), message.offset(), key,
                            state.scope)
            changed = self._book.apply_pause(key, state)
            if changed:
                self._applied_ms[key] = int(time.time() * 1000)
        self._ack_wanted.set()
        if changed and self.on_change is not None:
            try:
                self.on_change(key, state)
            except Exception:
                log.exception("pause guard: on_change callback failed")

    def _handle_heartbeat(self, message: Message) -> None:
        received = time.monotonic()
        if message.value() is None:
            worker = (message.key() or b"").decode(errors="replace")
            with self._lock:
                self._book.apply_heartbeat(worker, None)
            return
        beat: MonitorHeartbeat | None
        beat, error = self._decode(self._heartbeat_codec, message)
        with self._lock:
            if error is not None:
                self._book.undecodable += 1  # counted and skipped: its age cannot help
            elif beat is not None:
                self._book.apply_heartbeat(beat.worker_id, Beat(
                    beat.time_ms, received, beat.events_processed, beat.input_lag,
                    beat.healthy, beat.unhealthy_reason, beat.input_offset_sum))

    def _report_health(self) -> None:
        with self._changed:
            status = self._assess()
            self._changed.notify_all()
            if status.state is self._last_state:
                return
            self._last_state = status.state
        self._ack_wanted.set()
        log.info("pause guard: %s", status.reason)
        if self.on_health is not None:
            try:
                self.on_health(status)
            except Exception:
                log.exception("pause guard: on_health callback failed")

    # -- the acknowledgement thread ------------------------------------------------------

    def _ack(self) -> PauseAck:
        assert self.runner_id is not None
        with self._lock:
            state = self._assess().state
            return pause_ack(self._book, self.runner_id, self.runner_version, state.value,
                             int(time.time() * 1000), self._applied_ms)

    def _on_ack_delivery(self, error: KafkaError | None, _message: Message) -> None:
        if error is None:
            self.acks_sent += 1
            return
        self.ack_failures += 1
        (log.warning if self.ack_failures == 1 else log.debug)(
            "pause guard: acknowledgement not delivered to %s: %s", self.acks_topic,
            error.str())

    def _send_ack(self, producer: Producer) -> None:
        try:
            value = self._ack_codec.encode_record(self._ack())
            producer.produce(self.acks_topic, key=self.runner_id.encode(), value=value,
                             on_delivery=self._on_ack_delivery)
        except BufferError:  # the broker is not taking them: this one is dropped
            self.ack_failures += 1
        except (KafkaException, CodecError, ValidationError) as exc:
            self.ack_failures += 1
            log.warning("pause guard: acknowledgement not sent: %s", exc)
        producer.poll(0)

    def _run_acks(self) -> None:
        """Acknowledge after new control.pauses records (coalesced) and every
        ``ack_interval_s``; at stop, a last one (guard stopped), flushed within a bound."""
        producer: Producer | None = None
        try:
            producer = Producer({
                "bootstrap.servers": self.bootstrap,
                # polymon maps input keys to partitions with murmur2 (Java's, aiokafka's)
                "partitioner": "murmur2_random",
                "linger.ms": 0,
                "message.timeout.ms": max(1000, int(self.ack_interval_s * 5000)),
                "queue.buffering.max.messages": 100,  # a broker away: drop, never grow
                "reconnect.backoff.ms": 100,
                "reconnect.backoff.max.ms": 1000,
                "error_cb": lambda error: log.debug("pause guard acks: %s", error.str()),
                "logger": logging.getLogger(f"{__name__}.rdkafka"),
                **self._producer_config,
            })
            last_sent = float("-inf")
            while not self._acks_stopping.is_set():
                periodic_in = last_sent + self.ack_interval_s - time.monotonic()
                wanted = self._ack_wanted.wait(max(0.0, min(periodic_in, 0.1)))
                producer.poll(0)
                if self._acks_stopping.is_set():
                    break
                since = time.monotonic() - last_sent
                if not (wanted and since >= ACK_COALESCE_S) and since < self.ack_interval_s:
                    continue
                self._ack_wanted.clear()
                last_sent = time.monotonic()
                self._send_ack(producer)
            self._send_ack(producer)
        except Exception:  # acknowledgements are optional: the guard goes on without them
            log.exception("pause guard: acknowledgement thread failed")
        finally:
            if producer is not None:
                producer.flush(ACK_FLUSH_S)
