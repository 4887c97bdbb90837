"""Pure monitoring maths: every number polymon publishes is computed here.

The modules take plain values and numpy arrays and return plain values or frozen
dataclasses. They never import a stream framework, a Kafka client or a web library,
and never do I/O, so runners, the CLI and tests can all call them directly.

- :mod:`streams.maths.slo` — SLO compliance, burn rates, multi-window burn alerts.
- :mod:`streams.maths.freshness` — staleness of feeds and sequence-number gaps.
- :mod:`streams.maths.execution` — fill ratio and slippage-prediction error.
- :mod:`streams.maths.canary` — canary-versus-baseline deltas and verdicts.
- :mod:`streams.maths.drift` — histograms, KL divergence, PSI and feature drift.

Bad input (negative sizes, NaN, mismatched lengths) raises a ``ValueError`` whose
message names the offending argument; an empty window yields a defined value
(usually ``None``), never a NaN that could flow silently into an alert.
"""
