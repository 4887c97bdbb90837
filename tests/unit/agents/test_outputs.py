"""Changelog records: the JSON the tables' schema reads back on recovery."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.agents.outputs import changelog_messages, encode_json

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)


@given(json_values)
@settings(max_examples=400, deadline=None)
def test_a_value_is_written_as_the_json_module_writes_it(value: Any) -> None:
    # read back by the json module (Faust's codec), it is what json.dumps would give:
    # every float exactly, NaN and Infinity as json writes them, key order kept
    assert json.dumps(json.loads(encode_json(value))) == json.dumps(value)


def test_a_deleted_key_is_a_tombstone() -> None:
    changes = {"market:m1": {"events": 2, "ratio": 0.1}, "market:m2": None}
    assert list(changelog_messages(changes)) == [
        (b'"market:m1"', b'{"events":2,"ratio":0.1}'), (b'"market:m2"', None)]


def test_the_rows_an_agent_binds_are_the_tables_rows_for_its_life() -> None:
    from streams.agents import health, outputs
    from streams.agents.outputs import forget, rows_of, store

    rows = rows_of(health.slo_windows)
    assert rows is health.slo_windows.data.data  # the store's own dict
    store(health.slo_windows, "rows-test", {"n": 1}, 0)
    assert rows["rows-test"] == {"n": 1} and health.slo_windows.data.get("rows-test") == {"n": 1}
    health.slo_windows.data._clear()  # as Faust clears a table: the same dict, emptied
    assert rows_of(health.slo_windows) is rows and "rows-test" not in rows
    store(health.slo_windows, "rows-test", {"n": 2}, 0)
    forget(health.slo_windows, "rows-test", 0)
    assert "rows-test" not in rows
    assert health._slo_states is rows  # what the agent reads per event
    outputs._unsent_of(health.slo_windows, 0).pop("rows-test")  # its queued tombstone
