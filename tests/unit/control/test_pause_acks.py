from __future__ import annotations

from streams.control.alerts import AlertRule
from streams.control.pause_acks import (
    NOT_APPLIED,
    SILENT,
    AckSeen,
    PauseLog,
    PublishedPause,
    RunnerAlerts,
    RunnerLag,
    judge,
    step,
)
from streams.records import AlertStatus

T0 = 1_700_000_000_000
BOUND_S, TIMEOUT_S = 3.0, 10.0


def log_of(*records: tuple[int, int, str, str | None, int]) -> PauseLog:
    log = PauseLog()
    for partition, offset, scope, state_id, published_ms in records:
        log.note(PublishedPause(partition, offset, scope, state_id, True, published_ms))
    log.caught_up = lambda: True
    return log


def ack(watermarks: dict[int, int], received_ms: int = T0, guard_state: str = "ready") -> AckSeen:
    return AckSeen("r1", "polymon-0.1.0/bot-2", guard_state, received_ms, watermarks, 0,
                   received_ms)


def lag_at(log: PauseLog, seen: AckSeen | None, now_ms: int, required: bool = False,
           watching_since_ms: int | None = None) -> RunnerLag:
    return judge("r1", seen, log, now_ms, required=required, listed=required,
                 timeout_s=TIMEOUT_S, watching_since_ms=watching_since_ms)


def test_lag_counts_the_records_past_the_watermarks_and_the_oldest_unapplied_state() -> None:
    log = log_of((0, 0, "market:m1", "s1", T0), (0, 1, "market:m2", "s2", T0 + 1000),
                 (2, 0, "global", "s3", T0 + 500))
    log.set_end(1, 4)  # records compacted away on partition 1: its end still counts
    lag = lag_at(log, ack({0: 1, 1: 4}), T0 + 5000)
    assert lag.lag_records == 2  # partition 0 offset 1, partition 2 offset 0
    assert lag.oldest_unapplied is not None
    assert (lag.oldest_unapplied.scope, lag.oldest_unapplied.state_id) == ("global", "s3")
    assert lag.lag_s == 4.5 and lag.not_applied(BOUND_S)
    caught_up = lag_at(log, ack({0: 2, 1: 4, 2: 1}), T0 + 5000)
    assert (caught_up.lag_records, caught_up.lag_s, caught_up.oldest_unapplied) == (0, 0.0, None)
    assert not caught_up.not_applied(BOUND_S)


def test_a_state_within_the_bound_or_a_guard_not_ready_is_not_an_unapplied_pause() -> None:
    log = log_of((0, 0, "market:m1", "s1", T0))
    assert not lag_at(log, ack({}), T0 + 2999).not_applied(BOUND_S)
    assert lag_at(log, ack({}), T0 + 3001).not_applied(BOUND_S)
    # a guard that is not ready denies every scope: nothing it could trade on
    assert not lag_at(log, ack({}, guard_state="catching_up"), T0 + 9000).not_applied(BOUND_S)


def test_tombstones_count_as_lag_but_are_no_unapplied_pause() -> None:
    log = log_of((0, 0, "market:m1", "s1", T0), (0, 1, "market:m1", None, T0 + 100))
    lag = lag_at(log, ack({0: 1}), T0 + 9000)
    assert lag.lag_records == 1 and lag.oldest_unapplied is None


def test_the_log_keeps_a_bounded_tail_and_ignores_records_read_again() -> None:
    log = PauseLog(max_per_partition=3)
    for offset in range(10):
        log.note(PublishedPause(0, offset, "market:m1", f"s{offset}", True, T0 + offset))
    log.note(PublishedPause(0, 4, "market:m1", "again", True, T0))
    assert len(log.records[0]) <= 6 and log.ends == {0: 10}
    oldest = log.oldest_unapplied({0: 0})  # below the tail: the oldest kept counts
    assert oldest is not None and oldest.offset == log.records[0][0].offset
    assert log.lag_records({0: 0}) == 10


def test_silence_only_for_runners_that_acked_or_are_required() -> None:
    log = log_of()
    assert not lag_at(log, None, T0).silent  # unknown or listed: never acknowledged
    # required: silent once watched for longer than the timeout
    assert not lag_at(log, None, T0, required=True).silent
    assert not judge("r1", None, log, T0 + 10_000, required=True, listed=True,
                     timeout_s=TIMEOUT_S, watching_since_ms=T0).silent
    assert judge("r1", None, log, T0 + 10_001, required=True, listed=True,
                 timeout_s=TIMEOUT_S, watching_since_ms=T0).silent
    assert not lag_at(log, ack({}), T0 + 10_000).silent
    assert lag_at(log, ack({}), T0 + 10_001).silent


def test_one_episode_per_runner_and_reason_fired_and_resolved() -> None:
    log = log_of((0, 0, "market:m1", "s1", T0))
    alerts = RunnerAlerts()
    kwargs = {"bound_s": BOUND_S, "timeout_s": TIMEOUT_S, "rules": {}}
    assert step(alerts, lag_at(log, ack({}), T0 + 1000), T0 + 1000, **kwargs) == []
    fired = step(alerts, lag_at(log, ack({}), T0 + 4000), T0 + 4000, **kwargs)
    assert [(t.status, t.condition.reason_code) for t in fired] == [
        (AlertStatus.FIRING, NOT_APPLIED)]
    condition = fired[0].condition
    assert condition.scope == "runner:r1" and condition.threshold == BOUND_S
    for part in ("runner r1", "pause state s1 of market:m1", "published 4.0s ago",
                 "beyond the 3s bound"):
        assert part in condition.message, (part, condition.message)
    # still unapplied: the same episode, nothing new
    assert step(alerts, lag_at(log, ack({}), T0 + 5000), T0 + 5000, **kwargs) == []
    # the acknowledgements stop too: silence is an episode of its own
    silent = step(alerts, lag_at(log, ack({}), T0 + 11_000), T0 + 11_000, **kwargs)
    assert [(t.status, t.condition.reason_code) for t in silent] == [
        (AlertStatus.FIRING, SILENT)]
    assert "sent no pause acknowledgement for 11.0s" in silent[0].condition.message
    # it acknowledges again, past the pause: both resolve, with their own episodes' ids
    back = step(alerts, lag_at(log, ack({0: 1}, T0 + 12_000), T0 + 12_000), T0 + 12_000,
                **kwargs)
    assert sorted((t.status, t.condition.reason_code) for t in back) == [
        (AlertStatus.RESOLVED, NOT_APPLIED), (AlertStatus.RESOLVED, SILENT)]
    assert {t.fired_alert_id for t in back} == {fired[0].alert_id, silent[0].alert_id}
    assert alerts.active == {}
    # the state survives the table (JSON)
    assert RunnerAlerts.from_json(alerts.to_json()) == alerts


def test_hysteresis_holds_a_breach_for_its_pending_period() -> None:
    log = log_of((0, 0, "market:m1", "s1", T0))
    alerts = RunnerAlerts()
    rules = {NOT_APPLIED: AlertRule(for_ms=2000)}
    kwargs = {"bound_s": BOUND_S, "timeout_s": TIMEOUT_S, "rules": rules}
    assert step(alerts, lag_at(log, ack({}), T0 + 4000), T0 + 4000, **kwargs) == []
    assert [t.status for t in step(alerts, lag_at(log, ack({}), T0 + 6000), T0 + 6000,
                                   **kwargs)] == [AlertStatus.FIRING]


def test_a_required_runner_that_never_acked_is_silent_once() -> None:
    alerts = RunnerAlerts()
    kwargs = {"bound_s": BOUND_S, "timeout_s": TIMEOUT_S, "rules": {}}
    assert step(alerts, lag_at(log_of(), None, T0, True, T0), T0, **kwargs) == []
    fired = step(alerts, lag_at(log_of(), None, T0 + 11_000, True, T0), T0 + 11_000, **kwargs)
    assert [t.condition.reason_code for t in fired] == [SILENT]
    assert "required runner" in fired[0].condition.message
    assert step(alerts, lag_at(log_of(), None, T0 + 60_000, True, T0), T0 + 60_000,
                **kwargs) == []


def test_an_ack_seen_survives_the_table() -> None:
    seen = ack({0: 3, 2: 7})
    assert AckSeen.from_json(seen.to_json()) == seen
