"""Pure state machines (no Faust, no I/O): alert dedup, pause latch, health evaluation.

State is plain JSON-able dicts so agents can keep it in Faust tables."""
