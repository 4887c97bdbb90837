"""The aiokafka clients under Faust's, for what Faust gives no public way to:

- :func:`aiokafka_producer`: the aiokafka producer Faust started
  (``Producer._ensure_producer``), so outputs go out as whole record batches;
- :func:`group_member_id`: the member id this worker holds in its consumer group
  (the consumer thread's ``_ensure_consumer()._coordinator``), announced on /healthz
  for the dead-member check.

With the framework patches off both answer None / '' and their callers take the
libraries' public paths (Faust's per-message send; no member id announced, so no
eviction of dead members).
"""

from __future__ import annotations

from typing import Any

from streams import framework


def aiokafka_producer(app: Any) -> Any | None:
    """The aiokafka producer under ``app``'s Faust producer; None with the patches off."""
    if not framework.patched():
        return None
    return app.producer._ensure_producer()


def group_member_id(app: Any) -> str:
    """The id this worker holds in its consumer group now ('' while it holds none, and
    with the patches off)."""
    if not framework.patched():
        return ""
    try:
        return app.consumer._thread._ensure_consumer()._coordinator.member_id or ""
    except Exception:  # the consumer is not up yet, or is being replaced
        return ""
