"""Thin Faust agents and timers: decode, look up state, call the pure core, publish.

Importing this package registers every agent, timer and command handler with the app.
"""

from streams.agents import (
    canary,
    commands,
    drift,
    execution,
    health,
    incidents,
    latches,
    liveness,
    membership,
    rollout,
)

__all__ = ["canary", "commands", "drift", "execution", "health", "incidents", "latches",
           "liveness", "membership", "rollout"]
