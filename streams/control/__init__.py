"""Pure state machines (no Faust, no I/O): alert dedup, pause latch, health evaluation.

State is plain JSON-able dicts so agents can keep it in Faust tables."""

from streams import compiled as _compiled

# Modules of this package are compiled (streams.compiled.MODULES): the build is checked (or,
# with POLYMON_NO_EXTENSIONS, their sources chosen) before any of them is imported.
_compiled.install()
