"""Thin Faust agents and timers: decode, look up state, call the pure core, publish.

Importing this package registers every agent with the app.
"""

from streams.agents import health, ingest, liveness

__all__ = ["health", "ingest", "liveness"]
