"""streams.framework.producer: Faust's producer asks aiokafka for an idempotent producer
(acks=all) when installed so, and aiokafka accepts what it is given."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from streams.framework import gate, producer
from streams.framework.batch_consumer import BatchingTransport
from streams.framework.producer import IdempotentProducer


def _extra(idempotent: bool, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(producer, "_idempotent", idempotent)
    instance = IdempotentProducer.__new__(IdempotentProducer)
    instance.app = SimpleNamespace(in_transaction=False)  # type: ignore[assignment]
    return dict(instance._settings_extra())


def test_installed_idempotent_the_producer_settings_ask_for_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert _extra(True, monkeypatch) == {"acks": "all", "enable_idempotence": True}
    assert _extra(False, monkeypatch) == {}  # Faust's own (outside a transaction)


async def test_aiokafka_makes_an_idempotent_producer_of_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # as Faust's _new_producer merges them: its defaults (acks=-1), then the extras
    made = AIOKafkaProducer(**{"bootstrap_servers": "localhost:9", "acks": -1,
                               **_extra(True, monkeypatch)})
    assert made._txn_manager is not None  # idempotence: a producer id and sequence numbers


def test_the_batching_transport_makes_it_and_the_gate_checks_what_it_overrides() -> None:
    assert BatchingTransport.Producer is IdempotentProducer
    checked = {str(needed) for needed in gate.NEEDED}
    assert "faust.transport.drivers.aiokafka.Producer._settings_extra" in checked
    assert gate.attribute_problem(next(n for n in gate.NEEDED
                                       if n.attribute == "_settings_extra")) is None
