"""SLO declarations: endangered-scope patterns → the pause scopes a page-level burn
pauses; ticket-level burns pause nothing; the settings refuse malformed declarations."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from streams.control import health, slos
from streams.control.alerts import AlertTransition, Condition
from streams.control.pauses import is_paused
from streams.maths.slo import BurnRule
from streams.records import AlertStatus
from streams.scopes import ScopeError
from streams.settings import Settings

T0 = 1_790_000_000_000


@pytest.mark.parametrize(("pattern", "scope"), [
    ("market:*", "global"),  # no scope covers every market and nothing else
    ("*", "global"),
    ("global", "global"),
    ("market:m1", "market:m1"),
    ("bot:b1/market:*", "bot:b1"),
    ("bot:b1/market:m7", "bot:b1/market:m7"),
    ("strategy:s1/bot:*", "strategy:s1"),
])
def test_a_pattern_pauses_the_narrowest_scope_covering_all_it_names(pattern: str,
                                                                     scope: str) -> None:
    assert slos.pause_scope_of(pattern) == scope


@pytest.mark.parametrize("pattern", [
    "market:*", "bot:b1/market:*", "market:m1", "bot:b1/market:m7"])
@pytest.mark.parametrize("trading", ["market:m1", "bot:b1/market:m7", "bot:b1/market:m1"])
def test_the_pause_covers_every_trading_scope_the_pattern_names(pattern: str,
                                                                trading: str) -> None:
    """The runner's coverage rule (streams.control.pauses.is_paused, the same ancestors
    as the PauseGuard's): a scope the pattern names is paused; one it does not name
    stays running unless the pattern's wildcard could only be covered by a parent."""
    paused = {slos.pause_scope_of(pattern): True}
    names = (pattern == "market:*" or trading == pattern
             or (pattern == "bot:b1/market:*" and trading.startswith("bot:b1/market:"))
             or (pattern == "market:m1" and trading.endswith("market:m1")))
    if names:
        assert is_paused(trading, paused) is not None
    elif pattern != "market:*":
        assert is_paused(trading, paused) is None


@pytest.mark.parametrize(("pattern", "says"), [
    ("market:m*", "'*' only as the whole id"),
    ("*/market:m1", "'*' only as the whole id"),
    ("bot:*/market:m1", "'*' only as the whole id"),
    ("bot:*/market:*", "'*' only as the whole id"),
    ("venue:*", "unknown scope kind 'venue'"),
    ("market", "segment 'market' is not kind:id"),
    ("", "scope is empty"),
])
def test_a_malformed_pattern_is_refused_with_its_name(pattern: str, says: str) -> None:
    with pytest.raises(ScopeError, match=says.replace("*", r"\*")) as raised:
        slos.pause_scope_of(pattern)
    assert repr(pattern) in str(raised.value) or pattern == ""


def test_pause_scopes_drop_duplicates_and_what_another_already_covers() -> None:
    assert slos.pause_scopes(["market:m1", "market:m2", "market:m1"]) == ("market:m1",
                                                                         "market:m2")
    assert slos.pause_scopes(["market:m1", "market:*", "bot:b1"]) == ("global",)
    assert slos.pause_scopes(["bot:b1/market:m7", "bot:b1/market:*", "market:m9"]) == (
        "bot:b1", "market:m9")
    assert slos.pause_scopes(["bot:b1/market:m7", "market:m7"]) == ("market:m7",)


def _burns(healthy_n: int, total_n: int) -> list[AlertTransition]:
    """``healthy_n`` of ``total_n`` probes, unhealthy ones last, against a page rule at
    1.1x and a ticket rule at 1x (one-minute windows: every probe in both)."""
    rules = (BurnRule("page", 60, 30, 1.1, "page"), BurnRule("ticket", 60, 30, 1.0, "ticket"))
    state = health.new_slo_state(0, "feed:ingest", "ingest", "data-eng")
    transitions = []
    for n in range(total_n):
        transitions += health.observe_probe(state, T0, n < healthy_n, T0, 0.995, rules, 10,
                                            1_000)
    return transitions


def test_only_a_page_level_burn_pauses_the_endangered_scopes() -> None:
    targets = ("global", "market:m1", "feed:ingest")
    # 1.12x over 10,000 probes: both rules fire (the ticket one first, at 1x)
    both = _burns(9_944, 10_000)
    assert [t.condition.reason_code for t in both] == ["GOV_SLO_BURN_TICKET", "GOV_SLO_BURN"]
    pauses = slos.endangered_pauses(both, targets, "feed:ingest")
    assert [(target, t.condition.reason_code) for target, t in pauses] == [
        ("global", "GOV_SLO_BURN"), ("market:m1", "GOV_SLO_BURN")]
    # fired on crossing 1.1x: the 55th error, 55 of 9,999
    assert pauses[0][1].condition.value == pytest.approx(55 / 9_999 / 0.005)
    # 1.04x: the ticket rule alone, nothing paused
    ticket = _burns(9_948, 10_000)
    assert [t.condition.reason_code for t in ticket] == ["GOV_SLO_BURN_TICKET"]
    assert slos.endangered_pauses(ticket, targets, "feed:ingest") == []


def test_a_resolved_page_burn_releases_the_endangered_latches_too() -> None:
    condition = Condition(scope="feed:ingest", subject="ingest", reason_code="GOV_SLO_BURN",
                          firing=False, metric="burn_rate", value=0.5, threshold=1.1,
                          window_s=60.0, cause="c", event_time_ms=T0)
    resolved = AlertTransition("a2", AlertStatus.RESOLVED, condition, "a1")
    assert slos.endangered_pauses([resolved], ("global",), "feed:ingest") == [
        ("global", resolved)]


def test_settings_declare_slos_with_owner_target_and_endangered_scopes() -> None:
    settings = Settings(slos={"ingest": {"target": 0.999, "owner": "data-eng",
                                         "endangers": ["market:*"]}},
                        slo_targets={"other": 0.99})
    assert settings.slo_target("ingest") == 0.999
    assert settings.slo_target("other") == 0.99
    assert settings.slo_target("unknown") == settings.slo_default_target
    assert settings.slo_owner("ingest") == "data-eng" and settings.slo_owner("other") is None
    assert Settings(slos={"x": {"owner": "o"}}).slo_target("x") == 0.995


@pytest.mark.parametrize(("declaration", "says"), [
    ({"endangers": ["venue:*"]}, "unknown scope kind 'venue'"),
    ({"endangers": ["market:m*"]}, "'market:m\\*': '\\*' only as the whole id"),
    ({"endangers": [f"market:m{n}" for n in range(65)]}, "at most 64 items"),
    ({"target": 1.0}, "less than 1"),
    ({"owner": "a team"}, "should match pattern"),
    ({"owners": "x"}, "Extra inputs are not permitted"),
])
def test_a_malformed_declaration_is_refused_at_start_up(declaration: dict[str, object],
                                                       says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        Settings(slos={"ingest": declaration})


def test_a_burn_rule_severity_is_page_or_ticket() -> None:
    with pytest.raises(ValidationError, match="'page' or 'ticket'"):
        Settings(slo_burn_rules=[{"name": "r", "long_window_s": 60, "short_window_s": 5,
                                  "burn_rate_threshold": 2, "severity": "pager"}])
