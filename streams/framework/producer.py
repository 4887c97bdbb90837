"""Faust's aiokafka producer made idempotent: Faust passes ``enable_idempotence`` to
aiokafka only inside its transactions and has no setting for it, so the producer's
extra settings (``Producer._settings_extra``, private; streams.framework.gate checks it)
add it. With idempotence the producer's own retries of a batch the broker may already
have written (a lost acknowledgement) write it once, and batches of a partition stay in
order across retries. acks=all comes from the app's ``producer_acks``.

Installed by :func:`streams.framework.install` when ``idempotent_producer`` is set;
the batching transport (streams.framework.batch_consumer) makes the app use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

# set by install(); read when the app's producer is made (at the app's start)
_idempotent = False


def install(idempotent: bool) -> None:
    global _idempotent
    _idempotent = idempotent


def idempotent() -> bool:
    return _idempotent


class IdempotentProducer(faust_aiokafka.Producer):
    """Faust's aiokafka producer, idempotent when installed so."""

    def _settings_extra(self) -> Mapping[str, Any]:
        extra = dict(super()._settings_extra())
        if _idempotent:
            extra.update(acks="all", enable_idempotence=True)
        return extra
