"""The URL a Faust worker announces in its group subscription, read back."""

from __future__ import annotations

import json

from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata

from streams.agents.membership import announced_url
from streams.app import app


def test_the_url_of_a_faust_subscription() -> None:
    # what this app announces when it joins (Faust's assignor builds it)
    metadata = app.assignor.metadata({"t"}).encode()
    assert announced_url(metadata) == str(app.conf.canonical_url).rstrip("/")


def test_a_subscription_of_another_kind_of_consumer_has_none() -> None:
    plain = ConsumerProtocolMemberMetadata(0, ["t"], b"").encode()
    assert announced_url(plain) is None
    other = ConsumerProtocolMemberMetadata(0, ["t"], json.dumps({"x": 1}).encode()).encode()
    assert announced_url(other) is None
    assert announced_url(b"\x00garbage") is None
