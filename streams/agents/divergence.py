"""Trading on a paused scope (RISK_STATE_DIVERGENCE): the execution agent hands every
fill here while any scope is paused; the pure core (streams.control.divergence) judges
it against the pauses covering its bot and market.

The pause view is every partition of control.pauses read whole by the worker's read
model (streams.web.readmodel fills ``view``): a fill lives on its market's partition,
but the pauses covering it (``global``, ``bot:<id>``) may live on any other. The
episodes fired (one per paused scope and pause state) are kept in a table on the
partition of the fill that fired them; a clock tick resolves those whose pause state
has ended once the view has caught up (a view read again after a reconnect is partial
until then, and must not resolve anything).

Live only: under the event-time clock (replay) the view is read alongside the replay,
not in its event order, so a replay could not reproduce these decisions; it skips them.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import faust

from streams import tracing
from streams.agents.outputs import forget, owned_partitions, publish_alert, rows_of, store
from streams.agents.ticks import EVENT_CLOCK, every_tick
from streams.app import app, settings, topics
from streams.control import divergence
from streams.records import FillEvent

SOURCE = "agents.divergence"
GRACE_MS = int(settings.divergence_grace_s * 1000)
view = divergence.PauseView()
# episode key (scope@state id) -> its active alert, the paused scope and state, and the
# partition of the fill that fired it
divergence_alerts = app.Table(
    "divergence-alerts", default=None, partitions=topics.exec_fills.partitions,
    schema=faust.Schema(key_serializer="json", value_serializer="json"),
)
_episodes = rows_of(divergence_alerts)


def check_fill(record: FillEvent, partition: int, now_ms: int,
               message: Any = None) -> Awaitable[None] | None:
    """Judge a fill (called only while some scope is paused); what is left to await when
    it opens an episode (an alert naming ``message``, the fill's record, as its cause)."""
    if EVENT_CLOCK or not view.caught_up():  # a view read part way may show old states
        return None
    pause = divergence.diverging_pause(record.bot, record.market, record.event_time_ms,
                                       view.paused, GRACE_MS)
    if pause is None:
        return None
    key = divergence.episode_key(pause)
    if _episodes.get(key) is not None:  # this episode fired already
        return None
    trade = divergence.Trade(bot=record.bot, market=record.market, kind=str(record.kind),
                             order_id=record.order_id, time_ms=record.event_time_ms)
    active, transition = divergence.fire(None, pause, trade, GRACE_MS)
    if transition is None:
        return None
    store(divergence_alerts, key, {"partition": partition, "scope": pause.scope,
                                   "state_id": pause.state_id, "active": active}, partition)
    return publish_alert(transition, SOURCE, now_ms,
                         None if message is None else tracing.cause_of(message))


@every_tick
async def resolve_ended_pauses(now_ms: int) -> None:
    """Resolve the episodes whose pause state has ended (resumed, or replaced)."""
    if not _episodes or not view.caught_up():
        return
    owned = owned_partitions(topics.exec_fills)
    for key, row in list(_episodes.items()):
        if not row or row["partition"] not in owned:
            continue  # a partition given up: its new owner resolves it
        transition = divergence.resolve(row["active"], row["scope"], row["state_id"],
                                        view.paused.get(row["scope"]), now_ms)
        if transition is None:
            continue
        forget(divergence_alerts, key, row["partition"])
        await publish_alert(transition, SOURCE, now_ms)
