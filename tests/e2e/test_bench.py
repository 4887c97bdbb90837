"""`polymon bench` end to end, small: every phase runs and the report carries its figures.
The figures themselves are measurements (see the README), not asserted here."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from streams.settings import Settings
from tests import conftest
from tests.e2e.test_cli import polymon

pytestmark = pytest.mark.e2e

REPORT_KEYS = {"pipeline_eps", "faust_bare_eps", "quix_eps", "raw_eps", "ratio_to_raw",
               "ratio_to_quix", "latency_p50_ms", "latency_p99_ms", "peak_rss_mb", "nproc",
               "engine", "kafka_version", "soak_rss_start_mb", "soak_rss_end_mb",
               "soak_rss_growth"}


def test_bench_runs_every_phase_and_writes_the_report(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    leftover = tmp_path / "state" / "bench" / "broker" / "from-an-earlier-run"
    leftover.mkdir(parents=True)
    engine, cached = conftest.engine_under_test(), Settings()
    # Kafka's jars and the quixstreams env from the repository's caches: made once, not
    # per run
    done = polymon(None, "bench", "--engine", engine, "--events", "4000", "--scopes", "300",
                   "--latency-rate", "1000", "--latency-seconds", "6", "--soak-seconds", "6",
                   "--soak-scopes", "2000", "--soak-rate", "1000", "--report", str(report),
                   "--quix-env", str(cached.state_dir.resolve() / "bench-quix"), timeout=600,
                   POLYMON_STATE_DIR=str(tmp_path / "state"),
                   POLYMON_KAFKA_JARS_DIR=str(cached.jars_cache.resolve()))
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(report.read_text())
    assert set(figures) >= REPORT_KEYS
    assert figures["events"] == 4000 and figures["nproc"] >= 1
    assert figures["engine"] == engine
    assert (figures["kafka_version"] is None) == (engine == "embedded")
    for name in ("pipeline_eps", "faust_bare_eps", "quix_eps", "raw_eps", "peak_rss_mb"):
        assert figures[name] > 0, name
    assert math.isclose(figures["ratio_to_raw"], figures["pipeline_eps"] / figures["raw_eps"],
                        rel_tol=0.01, abs_tol=1e-4)
    assert math.isclose(figures["ratio_to_quix"],
                        figures["pipeline_eps"] / figures["quix_eps"], rel_tol=0.01)
    # the raw loop ran before and around the pipeline; the baseline is the median run
    runs = figures["raw_eps_runs"]
    assert len(runs) == 3 and min(runs) > 0
    assert figures["raw_eps"] == sorted(runs)[1]
    # 20 markets go stale during the latency phase: each must be caught
    assert figures["latency_samples"] == 20
    assert figures["latency_p50_ms"] <= figures["latency_p99_ms"]
    assert figures["soak_rss_start_mb"] > 0 and figures["soak_rss_end_mb"] > 0
    assert "pipeline_eps" in done.stdout and "ratio_to_quix" in done.stdout
    # the run's broker data and worker dirs are scratch: gone, the earlier run's too
    assert not (tmp_path / "state" / "bench").exists()


def test_bench_rejects_an_unknown_engine(tmp_path: Path) -> None:
    done = polymon(None, "bench", "--engine", "zookeeper",
                   POLYMON_STATE_DIR=str(tmp_path / "state"))
    assert done.returncode == 2
    assert "--engine must be one of kafka, embedded, got 'zookeeper'" in done.stderr
    assert not (tmp_path / "state").exists()  # nothing started, nothing made
