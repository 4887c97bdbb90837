"""The table store: Faust's in-memory store with dict-speed reads.

Agents read their state with ``table.data.get(key)`` on every event. Faust's store is a
MutableMapping proxy whose ``get`` is the generic one (``self[key]`` through a
``__missing__`` check, a KeyError for every absent key): about 2 µs a lookup, several
lookups an event. Here ``get`` and ``in`` go straight to the dict.

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
from faust.types import EventT

SCHEME = "polymon-memory"
# table name -> what turns a value recovered from its changelog into the layout the
# table's agent keeps now (a changelog outlives the worker version that wrote it)
_upgrades: dict[str, Callable[[Any], Any]] = {}


def upgrade_recovered(table_name: str, upgrade: Callable[[Any], Any]) -> None:
    """Values of ``table_name`` recovered from its changelog pass through ``upgrade``."""
    _upgrades[table_name] = upgrade


class MemoryStore(Store):
    def __post_init__(self) -> None:
        super().__post_init__()
        # reads are the hottest calls: the dict's own get, no method in between (Faust's
        # memory store keeps its dicts for its whole life)
        self.get = self.data.get  # type: ignore[method-assign]
        # written directly by streams.agents.outputs.store, with ``data``
        self.key_partitions: dict[Any, int] = self._key_partition  # type: ignore[assignment]

    def apply_changelog_batch(self, batch: Iterable[EventT], to_key: Callable[[Any], Any],
                              to_value: Callable[[Any], Any]) -> None:
        upgrade = _upgrades.get(self.table_name)
        if upgrade is not None:
            decode = to_value

            def to_value(raw: Any) -> Any:
                return upgrade(decode(raw))

        super().apply_changelog_batch(batch, to_key, to_value)

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def put(self, key: Any, value: Any, partition: int) -> None:
        self.data[key] = value
        self._key_partition[key] = partition

    def drop(self, key: Any) -> None:
        self.data.pop(key, None)
        self._key_partition.pop(key, None)


def register() -> str:
    """Make the store known to Faust; returns its URL for the app's ``store`` setting."""
    faust.stores.STORES.aliases[SCHEME] = f"{__name__}:MemoryStore"
    return f"{SCHEME}://"
