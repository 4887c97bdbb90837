"""SLO declarations: the trading scopes an SLO endangers, as the pause scopes that cover
them, and which burn alerts pause them. Pure: plain values in, plain values out.

A pattern is a scope (``market:m1``, ``bot:b1/market:m7``, ``global``) or a scope whose
last segment's id is ``*`` (``market:*``, ``bot:b1/market:*``): every scope of that kind
(under that parent). Pauses follow the scope hierarchy (streams.scopes): a pause covers
its scope's descendants, and ``global`` covers everything, but there is no scope that
covers every market and nothing else. So ``market:*`` pauses ``global`` and
``bot:b1/market:*`` pauses ``bot:b1``: the narrowest scope that covers every scope the
pattern names, including markets that appear after the burn (a list of the markets seen
so far would leave a new one running). Listing scopes explicitly pauses exactly them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from streams.scopes import GLOBAL, SCOPE_KINDS, ScopeError, ancestors, validate_scope

if TYPE_CHECKING:  # settings validate patterns with this module: no imports beyond scopes
    from streams.control.alerts import AlertTransition

WILDCARD = "*"
MAX_ENDANGERED = 64  # patterns per SLO: each burn sends one pause request per scope
SLO_BURN = "GOV_SLO_BURN"  # the page-level burn alert's reason code


def pause_scope_of(pattern: str) -> str:
    """The scope whose pause covers every trading scope ``pattern`` names (see the
    module's doc). Raises ScopeError, naming the pattern, for anything else."""
    if pattern in (WILDCARD, GLOBAL):
        return GLOBAL
    parent, _, last = pattern.rpartition("/")
    kind, _, ident = last.partition(":")
    if ident == WILDCARD:
        if kind not in SCOPE_KINDS:
            known = ", ".join(sorted(SCOPE_KINDS))
            raise ScopeError(f"endangered scope pattern {pattern!r}: unknown scope kind "
                             f"{kind!r} (known: {known})")
        if not parent:
            return GLOBAL
        pattern_parent = parent
    else:
        pattern_parent = pattern
    if WILDCARD in pattern_parent:
        raise ScopeError(f"endangered scope pattern {pattern!r}: '*' only as the whole id of "
                         "the last segment (market:*, bot:b1/market:*)")
    try:
        return validate_scope(pattern_parent)
    except ScopeError as exc:
        raise ScopeError(f"endangered scope pattern {pattern!r}: {exc}") from None


def pause_scopes(patterns: Iterable[str]) -> tuple[str, ...]:
    """The scopes a burn pauses for ``patterns``, in their order, without duplicates
    and without the scopes another one already covers (``global`` covers all)."""
    scopes = dict.fromkeys(pause_scope_of(pattern) for pattern in patterns)
    return tuple(scope for scope in scopes
                 if not any(cover != scope and cover in scopes for cover in ancestors(scope)))


def endangered_pauses(transitions: Iterable[AlertTransition], targets: Sequence[str],
                      own_scope: str) -> list[tuple[str, AlertTransition]]:
    """(pause scope, transition) for every page-level burn transition (GOV_SLO_BURN,
    firing or resolved) of an SLO and every scope it endangers: the pause latch of each
    holds (or releases) the burn. Ticket-level burns (GOV_SLO_BURN_TICKET) pause nothing;
    the probe's own scope is paused by its own latch already."""
    return [(target, transition) for transition in transitions
            if transition.condition.reason_code == SLO_BURN
            for target in targets if target != own_scope]
