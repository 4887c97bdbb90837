"""The table store reads like a dict and keeps the rest of Faust's store."""

from __future__ import annotations

from faust.stores.memory import Store

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
    assert store._key_partition["a"] == 3  # Faust's rebalance bookkeeping sees it
    store.put("b", 2, partition=1)
    store.drop("a")
    assert store.get("a") is None and store.get("b") == 2
    store._clear()  # as Faust clears a table's rows
    assert store.get("b") is None and not store.data
