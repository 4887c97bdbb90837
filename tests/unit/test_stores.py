"""The table store reads like a dict and keeps the rest of Faust's store."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.stores.memory import Store
from faust.types import TP

from streams import stores
from streams.app import app
from streams.stores import MemoryStore


def test_reads_go_straight_to_the_rows() -> None:
    store = MemoryStore("polymon-memory://", app, table=None, table_name="t")  # type: ignore[arg-type]
    store["a"] = {"n": 1}
    assert store.get("a") == {"n": 1}
    assert store.get("missing") is None and store.get("missing", 7) == 7
    assert "a" in store and "missing" not in store
    assert isinstance(store, Store)  # recovery, revocation: Faust's own


def test_the_app_tables_use_it() -> None:
    assert str(app.conf.store) == f"{stores.SCHEME}:"
    from streams.agents.health import scope_health
    assert isinstance(scope_health.data, MemoryStore)


def test_reads_and_direct_writes_see_every_change_of_the_rows() -> None:
    store = MemoryStore("polymon-memory://", app, table=None, table_name="t")  # type: ignore[arg-type]
    store.data["a"] = {"n": 1}  # as streams.agents.outputs.store writes
    store.key_partitions["a"] = 3
    assert store.get("a") == {"n": 1} and store["a"] == {"n": 1}
    store.put("b", 2, partition=1)
    store.drop("a")
    assert store.get("a") is None and store.get("b") == 2
    store._clear()  # as Faust clears a table's rows
    assert store.get("b") is None and not store.data


def test_recovered_values_pass_through_the_tables_upgrade() -> None:
    """A changelog written by an older version is read into the layout kept now."""
    stores.upgrade_recovered("upgraded", lambda value: value and {**value, "v": 2})
    store = MemoryStore("polymon-memory://", app, table=None, table_name="upgraded")  # type: ignore[arg-type]
    plain = MemoryStore("polymon-memory://", app, table=None, table_name="plain")  # type: ignore[arg-type]

    def event(key: str, value: Any, partition: int) -> Any:
        return SimpleNamespace(key=key, value=value,
                               message=SimpleNamespace(value=value, partition=partition))

    batch = [event("a", {"n": 1}, 2), event("b", {"n": 2}, 3), event("b", None, 3)]
    for target in (store, plain):
        target.apply_changelog_batch(batch, to_key=str, to_value=lambda value: value)
    assert store.data == {"a": {"n": 1, "v": 2}}  # b: deleted by its tombstone
    assert store.key_partitions == {"a": 2}
    assert plain.data == {"a": {"n": 1}}


def test_the_health_table_upgrades_its_recovered_states() -> None:
    from streams.agents.health import scope_health
    from streams.control import health
    assert stores._upgrades[scope_health.data.table_name] is health.upgrade_scope_state


def _changelog(*rows: tuple[str, Any, int]) -> list[Any]:
    return [SimpleNamespace(key=key, value=value,
                            message=SimpleNamespace(value=value, partition=partition))
            for key, value, partition in rows]


def test_recovery_and_revocation_keep_what_fausts_memory_store_keeps() -> None:
    """The two methods written anew (so that no private bookkeeping of Faust's store is
    touched) against Faust's own, on the same changelog and the same assignment."""
    ours = MemoryStore("polymon-memory://", app, table=None, table_name="t")  # type: ignore[arg-type]
    fausts = Store("memory://", app, table=None, table_name="t")  # type: ignore[arg-type]
    batch = _changelog(("a", {"n": 1}, 0), ("b", {"n": 2}, 1), ("c", {"n": 3}, 2),
                       ("b", None, 1), ("d", None, 3), ("d", {"n": 4}, 3), ("e", {}, 0),
                       ("e", None, 0))
    for store in (ours, fausts):
        store.apply_changelog_batch(batch, to_key=str, to_value=lambda value: value)
    assert ours.data == fausts.data
    assert {key for key in ours.data if key in ours.key_partitions} == set(ours.data)
    active = {TP("t", 0), TP("t", 3)}
    for store in (ours, fausts):
        asyncio.run(store.on_recovery_completed(active, set()))
    assert ours.data == fausts.data == {"a": {"n": 1}, "d": {"n": 4}}
    assert set(ours.key_partitions) == {"a", "d"}
