"""A worker's judgement of its own input: lag standing without progress is stuck."""

from __future__ import annotations

from streams.control.progress import Mark, Observed, advance, stuck

LIMIT_S = 10.0


def test_lag_without_progress_is_stuck_after_the_limit_and_named() -> None:
    marks = advance({}, {"health.events[0]": Observed(100, 0)}, now=0.0)
    for t in (1.0, 5.0, 10.0):  # records arrive, none is processed
        seen = {"health.events[0]": Observed(100, 40)}
        marks = advance(marks, seen, now=t)
        assert stuck(marks, seen, t, LIMIT_S) is None
    seen = {"health.events[0]": Observed(100, 42)}
    marks = advance(marks, seen, now=12.0)
    assert marks["health.events[0]"] == Mark(100, 0.0)
    assert stuck(marks, seen, 12.0, LIMIT_S) == \
        "input stuck: no progress on health.events[0] (42 waiting, 12s)"


def test_progress_or_no_lag_resets_the_clock() -> None:
    marks = advance({}, {"p0": Observed(100, 50)}, now=0.0)
    marks = advance(marks, {"p0": Observed(130, 50)}, now=8.0)  # moved on: progress
    assert stuck(marks, {"p0": Observed(130, 50)}, 15.0, LIMIT_S) is None
    marks = advance(marks, {"p0": Observed(130, 0)}, now=20.0)  # idle, nothing waiting
    assert marks["p0"] == Mark(130, 20.0)
    assert stuck(marks, {"p0": Observed(130, 0)}, 100.0, LIMIT_S) is None


def test_only_the_stuck_partitions_are_named_and_revoked_ones_are_forgotten() -> None:
    seen = {"p0": Observed(5, 3), "p1": Observed(7, 2), "p2": Observed(1, 0)}
    marks = advance({}, seen, now=0.0)
    seen = {"p0": Observed(5, 3), "p1": Observed(9, 2), "p2": Observed(1, 0)}
    marks = advance(marks, seen, now=11.0)
    assert stuck(marks, seen, 11.0, LIMIT_S) == "input stuck: no progress on p0 (3 waiting, 11s)"
    marks = advance(marks, {"p1": Observed(9, 2)}, now=12.0)  # p0 revoked
    assert set(marks) == {"p1"}
    assert stuck(marks, {"p1": Observed(9, 2)}, 12.0, LIMIT_S) is None
    # re-assigned later: its clock starts again
    marks = advance(marks, {"p0": Observed(5, 3), "p1": Observed(9, 2)}, now=30.0)
    assert marks["p0"] == Mark(5, 30.0)


def test_the_reason_names_a_few_partitions_and_counts_the_rest() -> None:
    seen = {f"health.events[{i}]": Observed(0, 1_000_000) for i in range(64)}
    marks = advance({}, seen, now=0.0)
    reason = stuck(marks, seen, 100.0, LIMIT_S)
    assert reason is not None and reason.endswith(" and 60 more")
    assert reason.count("waiting") == 4 and len(reason) < 500
