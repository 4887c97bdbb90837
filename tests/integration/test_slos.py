"""SLOs through the pipeline on the real broker: the seed's example (99,640 of 100,000
healthy at 0.995: compliant; 99,440 of 100,000: burn 1.12), per SLO with its declared
owner, in GET /api/slos and Prometheus; a page-level burn pauses the trading scopes the
SLO endangers, a ticket-level one pauses nothing."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import pytest

from streams.records import (
    AlertStatus,
    HealthEvent,
    HealthEventKind,
    PauseState,
    ReportEnvelope,
)
from streams.worker_process import http_json
from tests.conftest import CODECS, Stack, wait_until
from tests.integration.test_health_agents import pauses_by_scope

pytestmark = [pytest.mark.integration, pytest.mark.compiled_twin]

HOUR, TEN_MINUTES = 3600, 600
# The seed's figures (of 100,000 probes) on the compiled worker; the pure twins' run (much
# slower per event) takes a tenth of them, the same ratios.
SEED_TOTAL = 10_000 if os.environ.get("POLYMON_NO_EXTENSIONS") else 100_000
# Every probe of the test lands in both windows of both rules, so each rule judges the
# whole count: the page rule fires from 1.1x, the ticket rule from 1x.
RULES = [
    {"name": "page_burn", "long_window_s": HOUR, "short_window_s": TEN_MINUTES,
     "burn_rate_threshold": 1.1, "severity": "page"},
    {"name": "ticket_burn", "long_window_s": HOUR, "short_window_s": TEN_MINUTES,
     "burn_rate_threshold": 1.0, "severity": "ticket"},
]
SLOS = {
    # the seed's compliant example: 0.72x, no rule fires
    "ingest-compliant": {"target": 0.995, "owner": "data-eng", "endangers": ["market:m2"]},
    # the seed's burning example: 1.12x, both rules fire
    "ingest": {"target": 0.995, "owner": "data-eng", "endangers": ["market:*"]},
    # 1.04x: the ticket rule alone
    "registry": {"target": 0.995, "owner": "risk", "endangers": ["market:m3"]},
}


def send_probes(stack: Stack, scope: str, slo: str, healthy: int, total: int) -> None:
    """``healthy`` then ``total - healthy`` unhealthy probes: the burn rate only grows,
    so the last probe's evaluation is over the whole count. Encoded from one datum (a
    record each would take longer than the pipeline)."""
    template = HealthEvent(event_id="x", scope=scope, kind=HealthEventKind.SLO_PROBE,
                           source="prober", event_time_ms=int(time.time() * 1000), slo=slo,
                           owner="whoever-probes", healthy=True).to_avro()
    codec, key, prefix = CODECS["HealthEvent"], scope.encode(), uuid.uuid4().hex[:8]
    messages = []
    for n in range(total):
        template["event_id"], template["healthy"] = f"{prefix}-{n}", n < healthy
        messages.append((key, codec.encode(template)))
    stack.send_raw("health.events", messages)


def slo_rows(url: str) -> dict[str, Any]:
    status, body = http_json(f"{url}/api/slos", timeout_s=10)
    assert status == 200, body
    return body["slos"]


def metric(url: str, name: str, **labels: str) -> float | None:
    import urllib.request

    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            series, _, value = line.rpartition(" ")
            found = ",".join(sorted(series[len(name) + 1:-1].split(",")))
            if found == wanted:
                return float(value)
    return None


def test_the_seeds_slo_example_through_the_pipeline(stack: Stack) -> None:
    stack.create_topics()
    worker = stack.start_worker(
        evaluation_interval_s=0.1, slo_bucket_s=60, slo_min_events=10, slo_burn_rules=RULES,
        slos=SLOS)
    compliant_healthy = SEED_TOTAL * 9_964 // 10_000
    burning_healthy = SEED_TOTAL * 9_944 // 10_000
    send_probes(stack, "feed:ingest-a", "ingest-compliant", compliant_healthy, SEED_TOTAL)
    send_probes(stack, "feed:ingest-b", "ingest", burning_healthy, SEED_TOTAL)
    send_probes(stack, "feed:registry", "registry", 9_948, 10_000)
    expected = {"feed:ingest-a|ingest-compliant": SEED_TOTAL,
                "feed:ingest-b|ingest": SEED_TOTAL, "feed:registry|registry": 10_000}

    def counted() -> dict[str, Any] | None:
        rows = slo_rows(worker.url)
        done = all((rows.get(key) or {}).get("windows", {}).get(str(HOUR), {}).get("total")
                   == total for key, total in expected.items())
        return rows if done else None

    rows = wait_until(counted, 90, interval_s=1.0, what="every probe counted")

    compliant = rows["feed:ingest-a|ingest-compliant"]
    hour = compliant["windows"][str(HOUR)]
    assert (hour["healthy"], hour["total"]) == (compliant_healthy, SEED_TOTAL)
    assert hour["compliance"] == 0.9964 and hour["compliant"] is True
    assert hour["burn_rate"] == pytest.approx(0.72, rel=1e-9)
    assert compliant["error_budget_remaining"] == pytest.approx(0.28, rel=1e-9)
    assert compliant["owner"] == "data-eng", "the declared owner, not the probes'"
    assert compliant["firing_rules"] == []
    assert compliant["alerts"] == {"GOV_SLO_BURN": None, "GOV_SLO_BURN_TICKET": None}

    burning = rows["feed:ingest-b|ingest"]
    hour = burning["windows"][str(HOUR)]
    assert (hour["healthy"], hour["total"]) == (burning_healthy, SEED_TOTAL)
    assert hour["compliance"] == 0.9944 and hour["compliant"] is False
    assert hour["burn_rate"] == pytest.approx(1.12, rel=1e-9)
    assert burning["error_budget_remaining"] == pytest.approx(-0.12, rel=1e-9)
    assert burning["firing_rules"] == ["page_burn", "ticket_burn"]
    assert burning["endangers"] == ["global"], "market:* pauses global"
    assert {r["name"]: r["burn_rate_long"] for r in burning["rules"]} == pytest.approx(
        {"page_burn": 1.12, "ticket_burn": 1.12}, rel=1e-9)

    ticket_only = rows["feed:registry|registry"]
    assert ticket_only["windows"][str(HOUR)]["burn_rate"] == pytest.approx(1.04, rel=1e-9)
    assert ticket_only["firing_rules"] == ["ticket_burn"] and ticket_only["owner"] == "risk"

    # Alerts: the page-level burn CRITICAL, the ticket-level ones WARNING, owner named.
    def burn_alerts() -> list[ReportEnvelope] | None:
        found = [a for a in stack.read_records("monitor.alerts", idle_timeout_s=0.5)
                 if a.reason_code.startswith("GOV_SLO_BURN")]
        return found if len(found) >= 3 else None

    found = wait_until(burn_alerts, 30, what="the burn alerts")
    time.sleep(1.0)
    found = burn_alerts() or []
    by_kind = sorted((a.scope, a.reason_code, a.severity.value, a.payload.status)
                     for a in found)
    assert by_kind == [
        ("feed:ingest-b", "GOV_SLO_BURN", "CRITICAL", AlertStatus.FIRING),
        ("feed:ingest-b", "GOV_SLO_BURN_TICKET", "WARNING", AlertStatus.FIRING),
        ("feed:registry", "GOV_SLO_BURN_TICKET", "WARNING", AlertStatus.FIRING),
    ], "the compliant SLO raised nothing"
    page = next(a for a in found if a.reason_code == "GOV_SLO_BURN")
    assert "owner data-eng" in page.payload.message and "rule page_burn" in page.payload.message
    assert page.payload.value >= 1.1  # fired on crossing the page rule's rate

    # Pauses: the page-level burn pauses the probe's scope and what the SLO endangers
    # (market:* → global, the one scope covering every market); nothing else.
    def paused() -> dict[str, list[PauseState]]:
        """Pause states per scope, each once (a latch's owner re-publishes its state
        unchanged, same state id, on assignment and periodically)."""
        return {scope: list({state.state_id: state for _, state in states}.values())
                for scope, states in pauses_by_scope(stack).items()}

    deadline = time.monotonic() + 30
    while "global" not in (seen := paused()) and time.monotonic() < deadline:
        time.sleep(0.5)
    if "global" not in seen:
        forwarded = stack.read("polymon-slo.endangered-repartition", idle_timeout_s=1.0)
        dead = stack.read_records("monitor.deadletter", idle_timeout_s=1.0)
        pytest.fail(f"global not paused in 30 s: pauses {seen}; {len(forwarded)} burn(s) "
                    f"re-keyed {[m.key for m in forwarded]}; dead letters {dead}")
    time.sleep(1.0)
    pauses = paused()
    assert sorted(pauses) == ["feed:ingest-b", "global"]
    for scope in ("global", "feed:ingest-b"):
        [state] = pauses[scope]
        assert state.paused and state.reason_code == "GOV_SLO_BURN"
        assert state.policy.value == "LATCH" and state.cause_id == page.envelope_id

    # Prometheus: per SLO and owner, bounded labels.
    labels = {"slo": "ingest", "owner": "data-eng", "window": str(HOUR)}
    assert metric(worker.url, "polymon_slo_compliance", **labels) == 0.9944
    assert metric(worker.url, "polymon_slo_burn_rate", **labels) == pytest.approx(1.12)
    assert metric(worker.url, "polymon_slo_error_budget_remaining",
                  **labels) == pytest.approx(-0.12)
    assert metric(worker.url, "polymon_slo_compliance", slo="ingest-compliant",
                  owner="data-eng", window=str(HOUR)) == 0.9964
    assert metric(worker.url, "polymon_slo_rule_firing", slo="ingest", owner="data-eng",
                  rule="page_burn", severity="page") == 1
    assert metric(worker.url, "polymon_slo_rule_firing", slo="registry", owner="risk",
                  rule="page_burn", severity="page") == 0
