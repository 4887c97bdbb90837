"""The one home of everything polymon does with Faust, mode, aiokafka and pydantic
internals: private attributes read or written, private methods overridden or replaced.

Nothing outside this package touches a name those libraries keep to themselves. Each
module holds one job:

- :mod:`~streams.framework.batch_consumer`: Faust's consumer delivering each fetched
  batch of an input partition to its handler in one call (overrides
  ``Consumer._drain_messages`` and ``_new_offset``; reads the acknowledgement
  bookkeeping) and the transport that makes the app use it.
- :mod:`~streams.framework.record_unpacking`: aiokafka's fetched records unpacked in C
  (replaces ``PartitionRecords._unpack_records``, ``FetchResult.getall`` and the
  fetcher's ``MemoryRecords``).
- :mod:`~streams.framework.embedded_broker`: the embedded broker's workarounds (a pause
  after an empty fetch in ``Fetcher._proc_fetch_request``; a rejoin on an empty
  assignment in ``CoordinatorGroupRebalance.perform_group_join``).
- :mod:`~streams.framework.pydantic_fields`: input records assembled without
  validation (writes ``__pydantic_fields_set__``, ``__pydantic_extra__``,
  ``__pydantic_private__``).
- :mod:`~streams.framework.producer`: Faust's producer made idempotent (extends
  ``Producer._settings_extra``).
- :mod:`~streams.framework.clients`: the aiokafka producer under Faust's, and the
  group member id this worker holds.
- :mod:`~streams.framework.gate`: the exact versions and attributes all of this was
  written against, checked at start-up.

:func:`install` is the one call that puts them in place (``streams.app`` makes it). It
checks the gate first and refuses to start on any mismatch
(:class:`~streams.framework.gate.FrameworkMismatch`). With ``framework_patches`` off
(``POLYMON_FRAMEWORK_PATCHES=false``) it checks nothing and installs nothing: the
libraries' own paths run (Faust agents hand the same handlers batches of one), the
worker does the same, only slower.

Importing this package imports none of those libraries (the runner client reaches
:mod:`~streams.framework.pydantic_fields` through the records); :func:`install` does.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.settings import Settings

log = logging.getLogger(__name__)

# None until install(); then whether the patches are in place
_patched: bool | None = None


def install(settings: Settings) -> bool:
    """Check the gate and install every patch (``settings.framework_patches``), or
    leave the libraries' own paths in place. Process-wide; a second call with the same
    choice does nothing, another choice raises. True when the patches are in."""
    global _patched
    wanted = settings.framework_patches
    if _patched is not None:
        if _patched != wanted:
            raise RuntimeError(
                f"framework patches already {'installed' if _patched else 'switched off'} "
                "in this process; they cannot be switched at run time")
        return _patched
    from streams import compiled

    compiled.install()  # two of the patches are compiled: their builds checked first
    from streams.framework import pydantic_fields

    if not wanted:
        pydantic_fields.use_pydantic()
        log.warning("framework patches off (POLYMON_FRAMEWORK_PATCHES=false): Faust's "
                    "per-message delivery and aiokafka's own unpacking run")
        _patched = False
        return False
    from streams.framework import embedded_broker, gate, producer, record_unpacking

    gate.check()  # raises FrameworkMismatch, before anything is changed
    record_unpacking.install()
    producer.install(settings.idempotent_producer)
    if settings.embedded_broker_workarounds:
        embedded_broker.install_idle_fetch_backoff(settings.idle_fetch_backoff_s)
        embedded_broker.install_empty_assignment_rejoin()
    pydantic_fields.use_fast_assembly()
    _patched = True
    return True


def patched() -> bool:
    """Whether :func:`install` put the patches in (False before it ran)."""
    return bool(_patched)


def app_class() -> Any:
    """The Faust app class: one whose consumer delivers batches when patched, else
    Faust's own."""
    if patched():
        from streams.framework.batch_consumer import BatchingApp

        return BatchingApp
    import faust

    return faust.App
