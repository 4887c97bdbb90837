"""Trading on a paused scope: which pauses cover a trade, the grace, one alert per
(scope, pause state), and its end when the pause state ends."""

from __future__ import annotations

import pytest

from streams.control.divergence import (
    STATE_DIVERGENCE,
    PausedScope,
    PauseView,
    Trade,
    covering,
    diverging_pause,
    episode_key,
    fire,
    resolve,
)
from streams.records import AlertStatus

GRACE_MS = 5000
SINCE_MS = 1_700_000_000_000


def paused(*scopes: str, since_ms: int = SINCE_MS, state: str = "p1") -> dict[str, PausedScope]:
    return {scope: PausedScope(scope, f"{state}-{scope}", since_ms, "GOV_OPERATOR_PAUSE",
                               "operator:alice") for scope in scopes}


def trade(time_ms: int, bot: str = "b1", market: str = "m1", kind: str = "FILL",
          runner: str | None = None) -> Trade:
    return Trade(bot=bot, market=market, kind=kind, order_id="o-7", time_ms=time_ms,
                 runner=runner)


def test_the_scopes_covering_a_trade_are_the_runners() -> None:
    assert covering("b1", "m1") == ("global", "bot:b1", "market:m1", "bot:b1/market:m1")


@pytest.mark.parametrize("scope", ["market:m1", "bot:b1", "global", "bot:b1/market:m1"])
def test_a_trade_after_the_grace_on_a_covered_scope_diverges(scope: str) -> None:
    pauses = paused(scope)
    found = diverging_pause("b1", "m1", SINCE_MS + GRACE_MS + 1, pauses, GRACE_MS)
    assert found is pauses[scope]


@pytest.mark.parametrize("scope", ["market:m2", "bot:b2", "bot:b2/market:m1", "model:x"])
def test_pauses_of_other_scopes_do_not_cover_the_trade(scope: str) -> None:
    assert diverging_pause("b1", "m1", SINCE_MS + 60_000, paused(scope), GRACE_MS) is None


@pytest.mark.parametrize("late_ms", [-60_000, 0, 1, GRACE_MS])
def test_a_trade_within_the_grace_or_before_the_pause_is_no_divergence(late_ms: int) -> None:
    pauses = paused("market:m1")
    assert diverging_pause("b1", "m1", SINCE_MS + late_ms, pauses, GRACE_MS) is None


def test_the_broadest_pause_beyond_the_grace_is_named() -> None:
    # global was paused just now (within the grace), the market long ago: the market's
    # pause is the one the runner has had time to apply
    pauses = {**paused("global", since_ms=SINCE_MS + 60_000), **paused("market:m1")}
    found = diverging_pause("b1", "m1", SINCE_MS + 61_000, pauses, GRACE_MS)
    assert found is pauses["market:m1"]
    both_old = {**paused("global"), **paused("market:m1")}
    assert diverging_pause("b1", "m1", SINCE_MS + 61_000, both_old, GRACE_MS) is both_old["global"]


def test_a_resumed_scope_leaves_the_view_and_no_trade_diverges() -> None:
    view = PauseView()
    view.note("market:m1", True, "s1", SINCE_MS, "GOV_OPERATOR_PAUSE", "operator:alice")
    assert diverging_pause("b1", "m1", SINCE_MS + 60_000, view.paused, GRACE_MS) is not None
    view.note("market:m1", False, "s2", SINCE_MS + 30_000, None, "operator:alice")
    assert view.paused == {}
    assert diverging_pause("b1", "m1", SINCE_MS + 60_000, view.paused, GRACE_MS) is None
    view.note("global", True, "s3", SINCE_MS, None, "agents.health")
    view.remove("global")
    assert not view.paused


@pytest.mark.parametrize(("kind", "runner", "named"), [("FILL", None, "runner unknown"),
                                                       ("INTENT", "r-9", "runner r-9")])
def test_the_alert_names_bot_market_pause_and_runner(kind: str, runner: str | None,
                                                     named: str) -> None:
    pause = paused("market:m1")["market:m1"]
    active, transition = fire(None, pause, trade(SINCE_MS + 12_000, kind=kind, runner=runner),
                              GRACE_MS)
    assert transition is not None and active is not None
    assert transition.status is AlertStatus.FIRING
    condition = transition.condition
    assert (condition.scope, condition.reason_code, condition.cause) == (
        "market:m1", STATE_DIVERGENCE, "p1-market:m1")
    assert condition.value == 12.0 and condition.threshold == 5.0
    message = condition.message
    for part in ("bot b1", "market m1", f"{kind.lower()} of order o-7", "market:m1 is paused",
                 "GOV_OPERATOR_PAUSE by operator:alice", "2023-11-14T22:13:20.000+00:00",
                 "pause state p1-market:m1", "12.0s before", "5s grace", named):
        assert part in message, (part, message)


def test_one_alert_per_scope_and_pause_state() -> None:
    pause = paused("bot:b1")["bot:b1"]
    active, first = fire(None, pause, trade(SINCE_MS + 6000), GRACE_MS)
    assert first is not None
    # a later fill of the same episode, even of another market: nothing new
    assert fire(active, pause, trade(SINCE_MS + 9000, market="m2"), GRACE_MS) == (active, None)
    # another worker seeing another fill of the episode names the same alert
    _, elsewhere = fire(None, pause, trade(SINCE_MS + 7000, market="m3"), GRACE_MS)
    assert elsewhere is not None and elsewhere.alert_id == first.alert_id
    # a new pause state of the scope is a new episode
    again = paused("bot:b1", state="p2")["bot:b1"]
    assert episode_key(again) != episode_key(pause)
    _, second = fire(None, again, trade(SINCE_MS + 6000), GRACE_MS)
    assert second is not None and second.alert_id != first.alert_id


def test_the_episode_resolves_when_its_pause_state_ends() -> None:
    pause = paused("market:m1")["market:m1"]
    active, fired = fire(None, pause, trade(SINCE_MS + 6000), GRACE_MS)
    assert active is not None and fired is not None
    now_ms = SINCE_MS + 90_000
    assert resolve(active, "market:m1", pause.state_id, pause, now_ms) is None  # still paused
    resumed = resolve(active, "market:m1", pause.state_id, None, now_ms)
    assert resumed is not None and resumed.status is AlertStatus.RESOLVED
    assert resumed.fired_alert_id == fired.alert_id and "resumed" in resumed.condition.message
    replaced = resolve(active, "market:m1", pause.state_id,
                       paused("market:m1", state="p2")["market:m1"], now_ms)
    assert replaced is not None and "replaced by p2-market:m1" in replaced.condition.message
