"""Scopes: ``global`` or ``kind:id`` segments joined by ``/``, e.g. ``bot:b1/market:m7``.

A pause on a parent covers its children: ``global`` covers everything, ``bot:b1``
covers ``bot:b1/market:m7``.
"""

from __future__ import annotations

import functools
import re

GLOBAL = "global"
SCOPE_KINDS = frozenset({"bot", "market", "model", "feed", "strategy", "runner"})
# A bound on the whole scope: ids are at most 128 characters, and scopes are keys, labels
# and URL paths everywhere.
MAX_SCOPE_LENGTH = 256
MAX_SCOPE_ID = 128
MAX_SCOPE_SEGMENTS = 4  # bot:b1/market:m7/... : a pause covers every ancestor of a scope
SCOPE_ID = rf"[A-Za-z0-9_.\-]{{1,{MAX_SCOPE_ID}}}"
_KINDS = "|".join(sorted(SCOPE_KINDS))
# The grammar as one regex, which the OpenAPI document (streams/web/openapi.py) publishes
# as the scopes' ``pattern`` (ECMA-262 and Python read it alike); parse_scope says the same
# with precise messages (tests/unit/web/test_openapi.py fuzzes the two against each other).
SCOPE_PATTERN = (rf"^(?:{GLOBAL}|(?:{_KINDS}):{SCOPE_ID}"
                 rf"(?:/(?:{_KINDS}):{SCOPE_ID}){{0,{MAX_SCOPE_SEGMENTS - 1}}})$")
_SEGMENT = re.compile(rf"(?P<kind>[a-z]+):(?P<id>{SCOPE_ID})")


class ScopeError(ValueError):
    """A scope string that does not follow the grammar."""


def parse_scope(scope: str) -> tuple[tuple[str, str], ...]:
    """Split a scope into (kind, id) segments; ``global`` is the empty tuple."""
    if scope == GLOBAL:
        return ()
    if not scope:
        raise ScopeError("scope is empty")
    if len(scope) > MAX_SCOPE_LENGTH:
        raise ScopeError(f"scope {scope[:40]!r}...: {len(scope)} characters, at most "
                         f"{MAX_SCOPE_LENGTH}")
    parts = scope.split("/")
    if len(parts) > MAX_SCOPE_SEGMENTS:
        raise ScopeError(f"scope {scope[:60]!r}: {len(parts)} segments, at most "
                         f"{MAX_SCOPE_SEGMENTS}")
    segments = []
    for part in parts:
        # fullmatch: a regex's $ would let a trailing newline through
        match = _SEGMENT.fullmatch(part)
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
