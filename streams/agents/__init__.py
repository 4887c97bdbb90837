"""Thin Faust agents and timers: decode, look up state, call the pure core, publish.

Importing this package registers every agent, timer and command handler with the app.
"""

from streams.agents import commands, health, ingest, latches, liveness

__all__ = ["commands", "health", "ingest", "latches", "liveness"]
