"""What the execution agent refuses of a ScopedFills on its internal topic: a digest for
a scope fills are not re-keyed to, or a model's bucket without its cohort (dead-lettered
at the VALIDATE stage, with the reason)."""

from __future__ import annotations

import pytest

from streams.agents.decoding import InvalidInput
from streams.agents.execution import on_scoped_fills
from streams.records import FillBucket, ScopedFills

BUCKET = FillBucket(start_ms=1_790_000_000_000, last_event_ms=1_790_000_000_000, intents=0,
                    fills=1, requested=10.0, filled=10.0, slipped=0, error_sum=0.0,
                    error_sq_sum=0.0)


class _Message:
    topic, partition, offset, timestamp, key, value = "t", 0, 0, None, None, b""


@pytest.mark.parametrize(("scope", "reason"), [
    ("market:m1", "re-keyed to bot: and model: scopes only"),
    ("model:pricer", "a model's fill bucket without a cohort"),
])
def test_a_digest_the_agent_cannot_count_is_refused_with_its_reason(scope: str,
                                                                     reason: str) -> None:
    digest = ScopedFills(scope=scope, buckets=[BUCKET], samples=[])
    with pytest.raises(InvalidInput, match=reason):
        on_scoped_fills(digest, _Message())
