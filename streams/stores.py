"""The table store: Faust's in-memory store with dict-speed reads.

Agents read their state with ``table.data.get(key)`` on every event. Faust's store is a
MutableMapping proxy whose ``get`` is the generic one (``self[key]`` through a
``__missing__`` check, a KeyError for every absent key), several lookups an event. Here
``get`` and ``in`` go straight to the dict.

Agents write rows with ``put``/``drop`` (streams.agents.outputs.store/forget), which also
note each key's partition the way Faust's changelog recovery does: after a rebalance
Faust drops the rows of partitions this worker no longer owns, so it stops acting on
scopes another worker now judges.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import faust.stores
from faust.stores.memory import Store
from faust.types import TP, EventT

SCHEME = "polymon-memory"
# table name -> what turns a value recovered from its changelog into the layout the
# table's agent keeps now (a changelog outlives the worker version that wrote it)
_upgrades: dict[str, Callable[[Any], Any]] = {}


def upgrade_recovered(table_name: str, upgrade: Callable[[Any], Any]) -> None:
    """Values of ``table_name`` recovered from its changelog pass through ``upgrade``."""
    _upgrades[table_name] = upgrade


class MemoryStore(Store):
    """Faust's in-memory store, through its public interface only: the rows' partitions
    are kept here (``key_partitions``), not in the memory store's private bookkeeping,
    so the two methods that read them are this class's own."""

    def __post_init__(self) -> None:
        super().__post_init__()
        # reads are the hottest calls: the dict's own get, no method in between (Faust's
        # memory store keeps its dicts for its whole life)
        self.get = self.data.get  # type: ignore[method-assign]
        # key -> the partition of its changelog; written directly by
        # streams.agents.outputs.store, with ``data``
        self.key_partitions: dict[Any, int] = {}

    def apply_changelog_batch(self, batch: Iterable[EventT], to_key: Callable[[Any], Any],
                              to_value: Callable[[Any], Any]) -> None:
        """Faust's memory store's: each recovered row, its partition noted; a tombstone
        deletes the row unless the batch gave the key a value again."""
        upgrade = _upgrades.get(self.table_name)
        data, partitions = self.data, self.key_partitions
        deleted = set()
        for event in batch:
            key = to_key(event.key)
            if event.message.value is None:
                deleted.add(key)
            partitions[key] = event.message.partition
            value = to_value(event.value)
            data[key] = value if upgrade is None else upgrade(value)
        for key in deleted:
            if not data[key]:
                data.pop(key, None)
                partitions.pop(key, None)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        """Faust's memory store's: the rows of partitions this worker no longer owns go,
        so it stops acting on scopes another worker now judges."""
        owned = {partition for _, partition in active_tps}
        gone = [key for key, partition in self.key_partitions.items() if partition not in owned]
        for key in gone:
            self.data.pop(key, None)
            self.key_partitions.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def put(self, key: Any, value: Any, partition: int) -> None:
        self.data[key] = value
        self.key_partitions[key] = partition

    def drop(self, key: Any) -> None:
        self.data.pop(key, None)
        self.key_partitions.pop(key, None)


def register() -> str:
    """Make the store known to Faust; returns its URL for the app's ``store`` setting."""
    faust.stores.STORES.aliases[SCHEME] = f"{__name__}:MemoryStore"
    return f"{SCHEME}://"
