"""Scopes: ``global`` or ``kind:id`` segments joined by ``/``, e.g. ``bot:b1/market:m7``.

A pause on a parent covers its children: ``global`` covers everything, ``bot:b1``
covers ``bot:b1/market:m7``.
"""

from __future__ import annotations

import functools
import re

GLOBAL = "global"
SCOPE_KINDS = frozenset({"bot", "market", "model", "feed", "strategy"})
_SEGMENT = re.compile(r"^(?P<kind>[a-z]+):(?P<id>[A-Za-z0-9_.\-]{1,128})$")


class ScopeError(ValueError):
    """A scope string that does not follow the grammar."""


def parse_scope(scope: str) -> tuple[tuple[str, str], ...]:
    """Split a scope into (kind, id) segments; ``global`` is the empty tuple."""
    if scope == GLOBAL:
        return ()
    if not scope:
        raise ScopeError("scope is empty")
    segments = []
    for part in scope.split("/"):
        match = _SEGMENT.match(part)
        if match is None:
            raise ScopeError(f"scope {scope!r}: segment {part!r} is not kind:id")
        kind = match["kind"]
        if kind not in SCOPE_KINDS:
            known = ", ".join(sorted(SCOPE_KINDS))
            raise ScopeError(f"scope {scope!r}: unknown scope kind {kind!r} (known: {known})")
        segments.append((kind, match["id"]))
    return tuple(segments)


@functools.lru_cache(maxsize=65536)  # every event names a scope; most scopes recur
def validate_scope(scope: str) -> str:
    parse_scope(scope)
    return scope


def ancestors(scope: str) -> list[str]:
    """Every scope that covers ``scope``, broadest first, ending with the scope itself.

    A market under a bot is also covered by the bare market scope, so a pause of
    ``market:m7`` reaches ``bot:b1/market:m7``.
    """
    segments = parse_scope(scope)
    covering = [GLOBAL]
    for depth in range(1, len(segments) + 1):
        covering.append("/".join(f"{k}:{i}" for k, i in segments[:depth]))
    if len(segments) > 1:
        leaf = f"{segments[-1][0]}:{segments[-1][1]}"
        if leaf not in covering:
            covering.insert(-1, leaf)
    return list(dict.fromkeys(covering))
