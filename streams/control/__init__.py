"""Pure state machines (no Faust, no I/O): alert dedup, pause latch, health evaluation.

State is plain JSON-able dicts so agents can keep it in Faust tables."""

from streams import compiled as _compiled

# Modules of this package are compiled (streams.compiled.MODULES): the stale-build guard goes
# in before any of its modules is found, whoever imports it first.
_compiled.install()
