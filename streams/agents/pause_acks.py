"""Runners acknowledge pauses: the acknowledgements on control.pause-acks (one per runner,
keyed by its id, from its PauseGuard) judged against control.pauses by the pure core
(streams.control.pause_acks): lag, unapplied pauses (GOV_PAUSE_NOT_APPLIED), silence
(GOV_RUNNER_SILENT).

The worker that owns a control.pause-acks partition judges the runners keyed there: it
keeps each one's latest acknowledgement and alert state in a table, judges on every
acknowledgement and on every clock tick (silence and lag grow without any event). The
view of control.pauses is every partition read whole by the worker's read model
(streams.web.readmodel fills ``log``): a runner's watermarks cover every partition.
Before that view has caught up nothing is decided. A required runner (settings.runners)
that never acknowledged is judged by the owner of the partition its id hashes to.

Live only: acknowledgements are about now; under the event-time clock (replay) they are
skipped.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable
from typing import Any

import faust

from streams.agents.decoding import InvalidInput, consume
from streams.agents.outputs import owned_partitions, publish_alert, rows_of, store
from streams.agents.ticks import EVENT_CLOCK, every_tick
from streams.app import app, clock_ms, settings, topics
from streams.codec import InputMessage
from streams.control import pause_acks
from streams.control.alerts import rule_from
from streams.control.keying import partition_for
from streams.records import PauseAck

SOURCE = "agents.pause_acks"
log = pause_acks.PauseLog()
BOUND_S = settings.pause_ack_bound_s
TIMEOUT_S = settings.runner_ack_timeout_s
RULES = {code: rule_from(settings.alert_rule(code)) for code in pause_acks.REASONS}
# runner id -> {"partition", "ack" (AckSeen JSON or None), "alerts" (RunnerAlerts JSON)}
runner_acks = app.Table(
    "runner-acks", default=None, partitions=topics.pause_acks.partitions,
    schema=faust.Schema(key_serializer="json", value_serializer="json"),
)
_rows = rows_of(runner_acks)
# when this worker's view of control.pauses first caught up: a required runner that never
# acknowledged is silent once it has been watched for longer than the timeout
_watching_since_ms: int | None = None


def _home_partition(runner_id: str) -> int:
    """Where the runner's acknowledgements land (its PauseGuard keys them by its id)."""
    return partition_for(runner_id.encode(), topics.pause_acks.partitions,
                         settings.input_partitioner)


def _lag(runner_id: str, row: dict[str, Any] | None, now_ms: int) -> pause_acks.RunnerLag:
    listed = settings.runners.get(runner_id)
    ack = row.get("ack") if row else None
    return pause_acks.judge(
        runner_id, pause_acks.AckSeen.from_json(ack) if ack else None, log, now_ms,
        required=bool(listed and listed.required), listed=listed is not None,
        timeout_s=TIMEOUT_S, watching_since_ms=_watching_since_ms)


async def _judge(runner_id: str, row: dict[str, Any], now_ms: int) -> None:
    """Step the runner's alerts; publish their transitions; keep the state."""
    alerts = pause_acks.RunnerAlerts.from_json(row.get("alerts"))
    before = copy.deepcopy(alerts.to_json())  # step mutates the dicts in place
    transitions = pause_acks.step(alerts, _lag(runner_id, row, now_ms), now_ms,
                                  bound_s=BOUND_S, timeout_s=TIMEOUT_S, rules=RULES)
    after = alerts.to_json()
    if after != before:
        store(runner_acks, runner_id, {**row, "alerts": after}, row["partition"])
    for transition in transitions:
        await publish_alert(transition, SOURCE, now_ms)


def on_ack(record: PauseAck, message: InputMessage) -> Awaitable[None] | None:
    if EVENT_CLOCK:
        return None
    key = (message.key or b"").decode(errors="replace")
    if key != record.runner_id:  # another runner's key could hide this one's lag
        raise InvalidInput(f"key {key[:80]!r} is not the acknowledgement's runner_id "
                           f"{record.runner_id!r}")
    now_ms = clock_ms()
    ack = pause_acks.AckSeen(
        record.runner_id, record.runner_version, record.guard_state, record.sent_ms,
        {w.partition: w.offset for w in record.watermarks},
        sum(1 for applied in record.applied if applied.paused), now_ms)
    known = _rows.get(record.runner_id) or {}
    row = {"partition": message.partition, "ack": ack.to_json(),
           "alerts": known.get("alerts")}
    store(runner_acks, record.runner_id, row, message.partition)
    if not log.caught_up():
        return None
    return _judge(record.runner_id, row, now_ms)


consume(topics.pause_acks, "PauseAck", on_ack)


@every_tick
async def judge_runners(now_ms: int) -> None:
    """Silence and lag grow with no acknowledgement arriving: judge every runner here."""
    global _watching_since_ms
    if EVENT_CLOCK or not log.caught_up():
        return
    if _watching_since_ms is None:
        _watching_since_ms = now_ms
    owned = owned_partitions(topics.pause_acks)
    if not owned:
        return
    for runner_id, row in list(_rows.items()):
        if row and row["partition"] in owned:
            await _judge(runner_id, row, now_ms)
    for runner_id, listed in settings.runners.items():
        if listed.required and runner_id not in _rows:
            partition = _home_partition(runner_id)
            if partition in owned:
                await _judge(runner_id, {"partition": partition, "ack": None}, now_ms)


def runner_rows(now_ms: int, owned: set[int]) -> dict[str, dict[str, Any]]:
    """GET /api/runners of this worker's partitions: every runner that acknowledged, and
    every listed one (settings.runners) whose id hashes here."""
    rows: dict[str, dict[str, Any]] = {}
    for runner_id, row in list(_rows.items()):
        if row and row["partition"] in owned:
            rows[runner_id] = _view(runner_id, row, now_ms)
    for runner_id in settings.runners:
        if runner_id not in rows and runner_id not in _rows \
                and _home_partition(runner_id) in owned:
            rows[runner_id] = _view(runner_id, None, now_ms)
    return rows


def _view(runner_id: str, row: dict[str, Any] | None, now_ms: int) -> dict[str, Any]:
    view = _lag(runner_id, row, now_ms).view()
    active = pause_acks.RunnerAlerts.from_json((row or {}).get("alerts")).active
    view["alerts"] = {code: entry["alert_id"] for code, entry in active.items()}
    view["not_applied"] = pause_acks.NOT_APPLIED in view["alerts"]
    view["bound_s"] = BOUND_S
    view["timeout_s"] = TIMEOUT_S
    view["view_caught_up"] = log.caught_up()
    return view
