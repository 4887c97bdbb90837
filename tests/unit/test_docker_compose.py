"""docker-compose.yml, the Dockerfile and the Prometheus/Grafana files, checked by parsing.

There is no Docker engine where the tests run, so the stack is never started here;
these tests hold the files to what polymon's code actually reads and exposes:
settings names, the Kafka listeners, worker ports and metric names.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
METRICS_MODULE = ROOT / "streams" / "metrics.py"

WORKERS = ("polymon-worker-1", "polymon-worker-2")
SERVICES = ("kafka", "topics-init", *WORKERS, "prometheus", "grafana")


# --- helpers -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, whichever of the two compose forms it uses."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = (item.split("=", 1) for item in raw)
        return {key: value for key, value in pairs}
    return {str(key): "" if value is None else str(value) for key, value in raw.items()}


def _command(service: dict[str, Any]) -> list[str]:
    words: list[str] = []
    for key in ("entrypoint", "command"):
        value = service.get(key) or []
        words += shlex.split(value) if isinstance(value, str) else [str(v) for v in value]
    return words


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` -> {NAME: (host, port)}."""
    parsed: dict[str, tuple[str, int]] = {}
    for item in value.split(","):
        name, sep, address = item.strip().partition("://")
        host, colon, port = address.rpartition(":")
        assert sep and colon and port.isdigit(), f"bad listener {item!r}"
        parsed[name] = (host, int(port))
    return parsed


def _bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path, for the service's bind mounts (short syntax)."""
    mounts: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        source, _, rest = volume.partition(":")
        if source.startswith((".", "/")):
            target = rest.split(":")[0]
            mounts[target] = (ROOT / source).resolve()
    return mounts


def _published(service: dict[str, Any]) -> dict[int, int]:
    """Container port -> host port."""
    ports: dict[int, int] = {}
    for mapping in service.get("ports", []):
        host, _, container = str(mapping).rpartition(":")
        ports[int(container)] = int(host)
    return ports


_SUFFIXES = {
    "Counter": ("", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "Summary": ("", "_sum", "_count", "_created"),
}


def defined_metric_names() -> set[str]:
    """Every series name streams/metrics.py exposes (Counters are declared with _total)."""
    text = METRICS_MODULE.read_text()
    names: set[str] = set()
    for kind, name in re.findall(r"\b(Counter|Gauge|Histogram|Summary)\(\s*\"(polymon_\w+)\"",
                                 text):
        if kind == "Counter":
            assert name.endswith("_total"), f"declare Counter {name} with its _total suffix"
            names |= {name, name.removesuffix("_total") + "_created"}
        else:
            names |= {name + suffix for suffix in _SUFFIXES[kind]}
    return names


_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                 "and", "or", "unless", "offset", "inf", "nan"}


def metric_names_in(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (function names and labels excluded)."""
    expr = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range and subquery windows
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\boffset\s+\w+", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", expr):
        word, call = match.groups()
        if not call and word.lower() not in _PROMQL_WORDS:
            names.add(word)
    return names


# --- services ------------------------------------------------------------------------


def test_every_service_of_the_stack_exists(compose: dict[str, Any]) -> None:
    services = _services(compose)
    missing = [name for name in SERVICES if name not in services]
    assert not missing, f"docker-compose.yml lacks services {missing}"


def test_kafka_runs_kraft_without_zookeeper(compose: dict[str, Any]) -> None:
    services = _services(compose)
    assert not [name for name in services if "zookeeper" in name.lower()]
    assert not [s for s in services.values() if "zookeeper" in str(s.get("image", "")).lower()]
    env = _env(services["kafka"])
    assert "KAFKA_ZOOKEEPER_CONNECT" not in env
    assert "kafka" in services["kafka"]["image"]
    roles = {role.strip() for role in env["KAFKA_PROCESS_ROLES"].split(",")}
    assert {"broker", "controller"} <= roles
    assert env["KAFKA_NODE_ID"] and env["CLUSTER_ID"]

    # The quorum voters name this node at its CONTROLLER listener.
    listeners = _listeners(env["KAFKA_LISTENERS"])
    controller_names = env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(",")
    controller_ports = {listeners[name][1] for name in controller_names}
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    node, _, address = voters[0].partition("@")
    host, _, port = address.rpartition(":")
    assert node == env["KAFKA_NODE_ID"]
    assert host == "kafka" and int(port) in controller_ports


def test_kafka_image_is_the_version_the_tests_run(compose: dict[str, Any]) -> None:
    from streams.devtools.kafka_broker import kafka_version

    assert _services(compose)["kafka"]["image"] == f"apache/kafka:{kafka_version()}"

def test_kafka_never_auto_creates_topics_and_replicates_for_one_node(
    compose: dict[str, Any],
) -> None:
    env = _env(_services(compose)["kafka"])
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"].lower() == "false"
    for name in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
                 "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
        assert env[name] == "1", f"{name} must be 1 on a single-node cluster"


def test_kafka_has_a_healthcheck_and_a_named_data_volume(compose: dict[str, Any]) -> None:
    kafka = _services(compose)["kafka"]
    test = kafka["healthcheck"]["test"]
    probe = " ".join(test) if isinstance(test, list) else test
    assert "kafka-broker-api-versions.sh" in probe or "kafka-topics.sh" in probe
    env = _env(kafka)
    data_dirs = [volume for volume in kafka["volumes"]
                 if volume.split(":")[0] in (compose.get("volumes") or {})]
    assert data_dirs, "kafka's data must live on a named volume"
    assert any(volume.split(":")[1] == env["KAFKA_LOG_DIRS"] for volume in data_dirs)


def test_workers_share_a_group_and_a_bootstrap_but_not_an_id(compose: dict[str, Any]) -> None:
    envs = [_env(_services(compose)[name]) for name in WORKERS]
    for key in ("POLYMON_APP_ID", "POLYMON_KAFKA_BOOTSTRAP"):
        values = {env.get(key) for env in envs}
        assert len(values) == 1 and None not in values, f"workers differ on {key}: {values}"
    ids = [env.get("POLYMON_WORKER_ID") for env in envs]
    assert None not in ids and len(set(ids)) == len(ids), f"worker ids {ids}"
    for name, env in zip(WORKERS, envs, strict=True):
        assert env["POLYMON_WEB_HOST"] == "0.0.0.0"
        # bound to every interface, so the URL the others use must be its own name
        assert env["POLYMON_WEB_URL"] == f"http://{name}:{env['POLYMON_WEB_PORT']}"
        assert env["POLYMON_REPLICATION_FACTOR"] == "1"


def test_bootstrap_points_at_a_kafka_listener_advertised_on_the_compose_network(
    compose: dict[str, Any],
) -> None:
    services = _services(compose)
    kafka_env = _env(services["kafka"])
    listening_ports = {port for _, port in _listeners(kafka_env["KAFKA_LISTENERS"]).values()}
    advertised = _listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    for name in ("topics-init", *WORKERS):
        bootstrap = _env(services[name])["POLYMON_KAFKA_BOOTSTRAP"]
        for server in bootstrap.split(","):
            host, _, port = server.strip().rpartition(":")
            assert host == "kafka" and host in services, f"{name}: {server}"
            assert int(port) in listening_ports, f"{name}: kafka listens on {listening_ports}"
            # The broker must hand back an address the container can reach too.
            assert (host, int(port)) in advertised.values(), f"{name}: {server} not advertised"


def test_every_polymon_variable_is_a_settings_field(compose: dict[str, Any]) -> None:
    used = set(re.findall(r"\bPOLYMON_[A-Z0-9_]+\b", COMPOSE_FILE.read_text()))
    for service in _services(compose).values():
        used |= {key for key in _env(service) if key.startswith("POLYMON_")}
    assert {"POLYMON_KAFKA_BOOTSTRAP", "POLYMON_APP_ID", "POLYMON_WORKER_ID"} <= used
    unknown = sorted(name for name in used
                     if name.removeprefix("POLYMON_").lower() not in Settings.model_fields)
    assert not unknown, f"not fields of streams.settings.Settings: {unknown}"


@pytest.mark.parametrize("service", ["topics-init", *WORKERS])
def test_polymon_environments_are_valid_settings(
    compose: dict[str, Any], service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {k: v for k, v in _env(_services(compose)[service]).items() if k.startswith("POLYMON")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()  # raises on a value of the wrong type or shape
    assert settings.kafka_bootstrap == env["POLYMON_KAFKA_BOOTSTRAP"]


def test_shared_polymon_env_is_one_anchor(compose: dict[str, Any]) -> None:
    shared = compose["x-polymon-env"]
    for name in ("topics-init", *WORKERS):
        env = _env(_services(compose)[name])
        assert {k: env[k] for k in shared} == {k: str(v) for k, v in shared.items()}, name


def test_topics_init_creates_then_checks_topics_once(compose: dict[str, Any]) -> None:
    init = _services(compose)["topics-init"]
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert str(init["restart"]) == "no"
    command = " ".join(_command(init))
    assert "polymon topics create" in command
    assert command.index("topics create") < command.index("topics check")
    assert "build" in init or "polymon" in str(init.get("image"))


@pytest.mark.parametrize("name", WORKERS)
def test_workers_start_after_topic_init_and_publish_their_web_port(
    compose: dict[str, Any], name: str
) -> None:
    services = _services(compose)
    worker = services[name]
    assert worker["depends_on"]["topics-init"]["condition"] == "service_completed_successfully"
    assert worker["restart"] == "unless-stopped"
    assert _command(worker)[-1] == "worker"
    assert worker.get("image") == services["topics-init"].get("image")
    port = int(_env(worker)["POLYMON_WEB_PORT"])
    assert port in _published(worker), f"{name} does not publish its web port {port}"


def test_workers_publish_distinct_host_ports(compose: dict[str, Any]) -> None:
    services = _services(compose)
    host_ports = [_published(services[name])[int(_env(services[name])["POLYMON_WEB_PORT"])]
                  for name in WORKERS]
    assert sorted(host_ports) == [6066, 6067]


# --- Prometheus ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus(compose: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Path]]:
    mounts = _bind_mounts(_services(compose)["prometheus"])
    config_file = mounts["/etc/prometheus/prometheus.yml"]
    assert config_file.is_file(), f"{config_file} is mounted but does not exist"
    return yaml.safe_load(config_file.read_text()), mounts


def test_prometheus_scrapes_both_workers_where_they_listen(
    compose: dict[str, Any], prometheus: tuple[dict[str, Any], dict[str, Path]]
) -> None:
    config, _ = prometheus
    services = _services(compose)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    job = jobs["polymon"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = {target for static in job["static_configs"] for target in static["targets"]}
    expected = {f"{name}:{_env(services[name])['POLYMON_WEB_PORT']}" for name in WORKERS}
    assert targets == expected
    assert 9090 in _published(services["prometheus"])


def rule_files(prometheus: tuple[dict[str, Any], dict[str, Path]]) -> list[Path]:
    """The host files the mounted config's rule_files globs select."""
    config, mounts = prometheus
    found: list[Path] = []
    for pattern in config["rule_files"]:
        path = PurePosixPath(pattern)
        host_dir = mounts.get(str(path.parent))
        assert host_dir is not None, f"rule_files {pattern}: {path.parent} is not mounted"
        assert host_dir.is_dir()
        found += sorted(p for p in host_dir.iterdir() if fnmatch.fnmatch(p.name, path.name))
    return found


def test_rules_parse_and_use_only_metrics_polymon_defines(
    prometheus: tuple[dict[str, Any], dict[str, Path]],
) -> None:
    files = rule_files(prometheus)
    assert files, "rule_files select no file"
    allowed = defined_metric_names() | {"up"}
    alerts: set[str] = set()
    for path in files:
        for group in yaml.safe_load(path.read_text())["groups"]:
            assert group["name"] and group["rules"]
            for rule in group["rules"]:
                alerts.add(rule["alert"])
                used = metric_names_in(str(rule["expr"]))
                assert used, f"{rule['alert']}: no metric in {rule['expr']!r}"
                assert used <= allowed, f"{rule['alert']}: unknown metrics {used - allowed}"
    assert {"PolymonWorkerDown", "PolymonDeadLetters", "PolymonNoEventsProcessed"} <= alerts


def test_metrics_module_declares_the_names_the_rules_rely_on() -> None:
    assert {"polymon_events_processed_total", "polymon_dead_letters_total",
            "polymon_worker_up"} <= defined_metric_names()


def test_metric_name_extraction_sees_names_and_skips_functions_and_labels() -> None:
    expr = ('sum by (topic, stage) (rate(polymon_x_total{job="polymon", a=~"b.*"}[5m]))'
            " / ignoring(stage) up offset 5m > 0")
    assert metric_names_in(expr) == {"polymon_x_total", "up"}
    assert metric_names_in("increase(polymon_typo_total[5m]) > 0") == {"polymon_typo_total"}
    assert "polymon_typo_total" not in defined_metric_names() | {"up"}


# --- Grafana ------------------------------------------------------------------------


def test_grafana_provisions_prometheus_and_the_dashboards_dir(compose: dict[str, Any]) -> None:
    services = _services(compose)
    grafana = services["grafana"]
    assert 3000 in _published(grafana)
    mounts = _bind_mounts(grafana)
    provisioning = mounts["/etc/grafana/provisioning"]
    datasource_files = sorted((provisioning / "datasources").glob("*.y*ml"))
    provider_files = sorted((provisioning / "dashboards").glob("*.y*ml"))
    assert datasource_files and provider_files

    datasources = [ds for path in datasource_files
                   for ds in yaml.safe_load(path.read_text())["datasources"]]
    prometheus_urls = {ds["url"] for ds in datasources if ds["type"] == "prometheus"}
    prometheus_port = next(iter(_published(services["prometheus"])))
    assert prometheus_urls == {f"http://prometheus:{prometheus_port}"}

    providers = [p for path in provider_files
                 for p in yaml.safe_load(path.read_text())["providers"]]
    paths = {p["options"]["path"] for p in providers}
    assert paths, "no dashboard provider"
    for path in paths:
        assert path in mounts and mounts[path].is_dir(), f"dashboards path {path} not mounted"


def test_grafana_dashboards_parse_and_query_defined_metrics(compose: dict[str, Any]) -> None:
    dashboards_dir = _bind_mounts(_services(compose)["grafana"])["/var/lib/grafana/dashboards"]
    allowed = defined_metric_names() | {"up"}
    for path in dashboards_dir.glob("*.json"):
        dashboard = json.loads(path.read_text())
        assert dashboard["title"] and dashboard["uid"]
        for panel in dashboard.get("panels", []):
            for target in panel.get("targets", []):
                used = metric_names_in(target["expr"])
                assert used and used <= allowed, f"{path.name}: {panel['title']}: {used}"


# --- Dockerfile ----------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines()
             if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    instructions = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, args = line.strip().partition(" ")
            instructions.append((keyword.upper(), args.strip()))
    return instructions


def test_dockerfile_installs_the_package_and_runs_polymon_unprivileged() -> None:
    assert DOCKERFILE.is_file()
    instructions = dockerfile_instructions()
    by_kind: dict[str, list[str]] = {}
    for keyword, args in instructions:
        by_kind.setdefault(keyword, []).append(args)
    assert by_kind["FROM"][0].startswith("python:3.11")
    assert any(re.search(r"pip install\b.*\s\.(\s|$)", run) for run in by_kind["RUN"])
    assert not any("pip install -e" in run or "--editable" in run for run in by_kind["RUN"])
    assert json.loads(by_kind["ENTRYPOINT"][-1]) == ["polymon"]
    assert json.loads(by_kind["CMD"][-1]) == ["worker"]
    assert by_kind["USER"][-1] not in ("root", "0")
    assert any("POLYMON_STATE_DIR=/var/lib/polymon" in env for env in by_kind["ENV"])
    exposed = {int(port.split("/")[0]) for args in by_kind["EXPOSE"] for port in args.split()}
    assert Settings.model_fields["web_port"].default in exposed


def test_dockerfile_copies_everything_the_package_is_built_from() -> None:
    sources: list[str] = []
    for keyword, args in dockerfile_instructions():
        if keyword == "COPY" and "--from" not in args:
            *srcs, _dest = args.split()
            sources += srcs
    copied: set[Path] = set()
    for source in sources:
        matches = list(ROOT.glob(source.rstrip("/")))
        if not any(ch in source for ch in "*?["):
            assert matches, f"COPY {source}: no such file in the repo"
        copied |= {m.resolve() for m in matches}

    def is_copied(path: Path) -> bool:
        return any(path == c or c in path.parents for c in copied)

    assert is_copied((ROOT / "pyproject.toml").resolve())
    assert is_copied((ROOT / "streams" / "__init__.py").resolve())
    # Package data reached through symlinks: their targets must be in the image too.
    links = [p for p in (ROOT / "streams").iterdir() if p.is_symlink()]
    assert {link.name for link in links} >= {"schemas", "topics.toml"}
    for link in links:
        assert is_copied(link.resolve()), f"{link} -> {link.resolve()} is not copied"
