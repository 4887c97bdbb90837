"""Thin Faust agents and timers: decode, look up state, call the pure core, publish.

Importing this package registers every agent, timer and command handler with the app.
"""

from streams import compiled as _compiled

# Modules of this package are compiled (streams.compiled.MODULES): the native parts are
# readied (the switch, the check that the build is current) before any of them is found.
_compiled.install()

from streams.agents import (  # noqa: E402
    canary,
    commands,
    divergence,
    drift,
    execution,
    health,
    incidents,
    latches,
    liveness,
    membership,
    pause_acks,
    rollout,
    trades,
)

__all__ = ["canary", "commands", "divergence", "drift", "execution", "health", "incidents",
           "latches", "liveness", "membership", "pause_acks", "rollout", "trades"]
