from __future__ import annotations

import re

import pytest

from streams.scopes import SCOPE_PATTERN, ScopeError, ancestors, parse_scope


def test_global_and_nested_scopes_parse() -> None:
    assert parse_scope("global") == ()
    assert parse_scope("bot:b1/market:m7") == (("bot", "b1"), ("market", "m7"))


@pytest.mark.parametrize(("scope", "message"), [
    ("", "empty"),
    ("market", "not kind:id"),
    ("planet:mars", "unknown scope kind 'planet'"),
    ("market:m 7", "not kind:id"),
    ("bot:b1//market:m1", "not kind:id"),
])
def test_bad_scopes_are_rejected_precisely(scope: str, message: str) -> None:
    with pytest.raises(ScopeError, match=message):
        parse_scope(scope)


def test_a_market_under_a_bot_is_covered_by_global_bot_and_market() -> None:
    assert ancestors("bot:b1/market:m7") == ["global", "bot:b1", "market:m7", "bot:b1/market:m7"]
    assert ancestors("market:m7") == ["global", "market:m7"]
    assert ancestors("global") == ["global"]


def test_a_scope_has_at_most_four_segments() -> None:
    assert parse_scope("strategy:s/bot:b1/market:m7/feed:book")
    with pytest.raises(ScopeError, match="5 segments, at most 4"):
        parse_scope("strategy:s/bot:b1/market:m7/feed:book/model:x")
    assert not re.fullmatch(SCOPE_PATTERN, "strategy:s/bot:b1/market:m7/feed:book/model:x")
    assert re.fullmatch(SCOPE_PATTERN, "strategy:s/bot:b1/market:m7/feed:book")
