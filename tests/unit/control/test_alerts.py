"""step_alert: one FIRING per episode of a true condition, one RESOLVED when it clears,
ids derived from the cause."""

from __future__ import annotations

import json
from dataclasses import replace

from streams.control.alerts import Condition, step_alert
from streams.envelope import derive_id
from streams.records import AlertStatus

T0 = 1_790_000_000_000


def condition(firing: bool, cause: str = f"book@{T0}", **changes: object) -> Condition:
    base = Condition(
        scope="market:m7", subject="book", reason_code="RISK_STALE_BOOK", firing=firing,
        metric="staleness_s", value=4.6 if firing else 0.1, threshold=2.0, window_s=None,
        cause=cause, event_time_ms=T0, message="book last updated 4.600s ago",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_clear_condition_with_no_active_alert_does_nothing() -> None:
    assert step_alert(None, condition(False)) == (None, None)


def test_fires_once_while_the_condition_stays_true() -> None:
    state, fired = step_alert(None, condition(True))
    assert fired is not None
    assert fired.status is AlertStatus.FIRING
    assert fired.condition == condition(True)
    assert fired.fired_alert_id == fired.alert_id
    assert fired.alert_id.startswith("alert-")
    assert state == {"alert_id": fired.alert_id, "reason_code": "RISK_STALE_BOOK",
                     "cause": f"book@{T0}"}

    for _ in range(5):
        # Re-evaluated (even with a newer value) while still firing: no new transition.
        again, transition = step_alert(state, condition(True, value=9.9))
        assert transition is None
        assert again == state


def test_resolves_once_when_the_condition_clears() -> None:
    state, fired = step_alert(None, condition(True))
    assert fired is not None
    state, resolved = step_alert(state, condition(False))
    assert state is None
    assert resolved is not None
    assert resolved.status is AlertStatus.RESOLVED
    assert resolved.condition == condition(False)
    assert resolved.fired_alert_id == fired.alert_id
    assert resolved.alert_id != fired.alert_id
    assert resolved.alert_id == derive_id("alert", fired.alert_id, "resolved")

    for _ in range(3):
        state, transition = step_alert(state, condition(False))
        assert (state, transition) == (None, None)


def test_same_cause_gives_the_same_ids_across_calls_and_instances() -> None:
    runs = []
    for _ in range(2):
        state, fired = step_alert(None, condition(True))
        _, resolved = step_alert(dict(state or {}), condition(False))
        assert fired is not None and resolved is not None
        runs.append((fired.alert_id, resolved.alert_id))
    assert runs[0] == runs[1]


def test_the_id_does_not_depend_on_the_observed_value_or_message() -> None:
    _, first = step_alert(None, condition(True))
    _, second = step_alert(None, condition(True, value=123.0, message="other wording"))
    assert first is not None and second is not None
    assert first.alert_id == second.alert_id


def test_a_different_cause_or_subject_gives_a_different_id() -> None:
    variants = [
        condition(True),
        condition(True, cause=f"book@{T0 + 1}"),
        condition(True, subject="registry"),
        condition(True, scope="market:m8"),
        condition(True, reason_code="RISK_STALE_DATA"),
    ]
    ids = set()
    for variant in variants:
        _, fired = step_alert(None, variant)
        assert fired is not None
        ids.add(fired.alert_id)
    assert len(ids) == len(variants)


def test_a_new_episode_after_a_resolve_fires_again_with_its_own_id() -> None:
    state, first = step_alert(None, condition(True))
    state, _ = step_alert(state, condition(False))
    state, second = step_alert(state, condition(True, cause=f"book@{T0 + 10_000}"))
    assert first is not None and second is not None
    assert second.status is AlertStatus.FIRING
    assert second.alert_id != first.alert_id
    assert state is not None and state["alert_id"] == second.alert_id


def test_the_active_state_survives_a_json_round_trip() -> None:
    state, fired = step_alert(None, condition(True))
    restored = json.loads(json.dumps(state))
    assert restored == state
    assert step_alert(restored, condition(True)) == (restored, None)
    _, resolved = step_alert(restored, condition(False))
    assert resolved is not None and fired is not None
    assert resolved.fired_alert_id == fired.alert_id
