"""docker-compose.yml, the Dockerfile and the Prometheus/Grafana files, checked by parsing.

There is no Docker engine where the tests run, so the stack is never started here;
these tests hold the files to what polymon's code actually reads and exposes:
settings names, the Kafka listeners and their security, the principals and ACLs, the
init order, worker ports and metric names. The certificate init script is really run
(with the JRE's keytool) and polymon's TLS client checked against what it makes.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import re
import shlex
import shutil
import ssl
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from streams.acls import AclPrincipals, deployment_acls
from streams.devtools.kafka_broker import AUTHORIZER, SCRAM_MECHANISM
from streams.kafka_security import ssl_context
from streams.settings import Settings
from streams.topics import load_topic_specs

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
METRICS_MODULE = ROOT / "streams" / "metrics.py"

WORKERS = ("polymon-worker-1", "polymon-worker-2")
INITS = ("certs-init", "users-init", "acls-init", "topics-init")
SERVICES = ("kafka", *INITS, *WORKERS, "prometheus", "grafana")
# the services that run polymon (and so read POLYMON_* settings)
POLYMON_SERVICES = ("acls-init", "topics-init", *WORKERS)
LOOPBACK = {"localhost", "127.0.0.1", "::1"}
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


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


def _interpolated(value: str) -> str:
    """``value`` as compose runs it with no variable set: ``${NAME:-default}`` -> default."""
    return VARIABLE.sub(lambda match: match.group(2) or "", value)


def _volumes(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> named volume, for the service's named volumes (short syntax)."""
    mounts: dict[str, str] = {}
    for volume in service.get("volumes", []):
        source, _, rest = volume.partition(":")
        if not source.startswith((".", "/")):
            mounts[rest.split(":")[0]] = source
    return mounts


def _volume_holding(service: dict[str, Any], path: str) -> str | None:
    """The named volume of ``service`` that ``path`` lies in."""
    for target, volume in _volumes(service).items():
        if PurePosixPath(path).is_relative_to(target):
            return volume
    return None


def _host_file(service: dict[str, Any], path: str) -> Path | None:
    """The repo file that ``path`` is in ``service``, through its bind mounts."""
    for target, host in _bind_mounts(service).items():
        if PurePosixPath(path).is_relative_to(target):
            return host / PurePosixPath(path).relative_to(target)
    return None


def _depends(service: dict[str, Any]) -> dict[str, str]:
    """Service -> the condition this one waits for."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return {name: "service_started" for name in raw}
    return {name: spec.get("condition", "service_started") for name, spec in raw.items()}


def _property(variable: str) -> str:
    """The server property the apache/kafka image writes for a KAFKA_* variable
    (KafkaDockerWrapper: '_' -> '.', '___' -> '-', '__' -> '_')."""
    return (variable.removeprefix("KAFKA_").lower().replace("_", ".")
            .replace("...", "-").replace("..", "_"))


def _jaas_login(jaas: str) -> tuple[str, str]:
    """(username, password) of a JAAS line, interpolated."""
    user = re.search(r'username="([^"]*)"', jaas)
    password = re.search(r'password="([^"]*)"', jaas)
    assert user and password, f"no username/password in {jaas!r}"
    return user.group(1), password.group(1)


def _kafka_env(compose: dict[str, Any]) -> dict[str, str]:
    return _env(_services(compose)["kafka"])


def _protocols(compose: dict[str, Any]) -> dict[str, str]:
    """Listener name -> security protocol."""
    pairs = (item.split(":") for item in
             _kafka_env(compose)["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    return {name.strip(): protocol.strip() for name, protocol in pairs}


def _super_users(compose: dict[str, Any]) -> set[str]:
    return {user.strip() for user in _kafka_env(compose)["KAFKA_SUPER_USERS"].split(";")}


def _users_init(compose: dict[str, Any]) -> tuple[str, str, tuple[str, str], dict[str, str]]:
    """users-init's (bootstrap, CA file, (admin, password), {user: password}), interpolated."""
    words = [_interpolated(word) for word in _command(_services(compose)["users-init"])]
    script = next(i for i, word in enumerate(words) if word.endswith("kafka-users.sh"))
    bootstrap, ca_file, admin, *users = words[script + 1:]
    name, _, password = admin.partition(":")
    return (bootstrap, ca_file, (name, password),
            dict(user.split(":", 1) for user in users))


def _acl_principals(compose: dict[str, Any]) -> AclPrincipals:
    raw = _env(_services(compose)["acls-init"])["POLYMON_ACL_PRINCIPALS"]
    return AclPrincipals.model_validate_json(raw)


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

    # The quorum voters name this node at its CONTROLLER listener, on loopback: nothing
    # outside the container reaches the quorum.
    listeners = _listeners(env["KAFKA_LISTENERS"])
    controller_names = env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(",")
    controllers = {listeners[name] for name in controller_names}
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert len(voters) == 1
    node, _, address = voters[0].partition("@")
    host, _, port = address.rpartition(":")
    assert node == env["KAFKA_NODE_ID"]
    assert (host, int(port)) in controllers and host in LOOPBACK


def test_kafka_image_is_the_version_the_tests_run(compose: dict[str, Any]) -> None:
    from streams.devtools.kafka_broker import kafka_version

    images = {name: service["image"] for name, service in _services(compose).items()
              if "kafka" in str(service.get("image", ""))}
    assert set(images) == {"kafka", "certs-init", "users-init"}
    assert set(images.values()) == {f"apache/kafka:{kafka_version()}"}


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


def test_the_healthcheck_logs_in_with_the_config_the_entrypoint_writes(
    compose: dict[str, Any],
) -> None:
    # every listener authenticates, so an anonymous probe would never see a healthy broker
    kafka = _services(compose)["kafka"]
    probe = " ".join(kafka["healthcheck"]["test"][1:])
    config = re.search(r"--command-config\s+(\S+)", probe)
    assert config, "the healthcheck must log in (--command-config)"
    entrypoint = _host_file(kafka, _command(kafka)[1])
    assert entrypoint is not None and entrypoint.is_file()
    script = entrypoint.read_text()
    written = {f"{m.group(1)}/{m.group(2)}".replace("$config", "/opt/kafka/config")
               for m in re.finditer(r'cat > "(\$config)/([\w.]+)"', script)}
    assert config.group(1) in written


def test_workers_share_a_group_and_a_bootstrap_but_not_an_id(compose: dict[str, Any]) -> None:
    envs = [_env(_services(compose)[name]) for name in WORKERS]
    for key in ("POLYMON_APP_ID", "POLYMON_KAFKA_BOOTSTRAP", "POLYMON_KAFKA_SASL_USERNAME"):
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
    bootstraps = {name: _env(services[name])["POLYMON_KAFKA_BOOTSTRAP"]
                  for name in POLYMON_SERVICES}
    bootstraps["users-init"] = _users_init(compose)[0]
    for name, bootstrap in bootstraps.items():
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
    assert {"POLYMON_KAFKA_BOOTSTRAP", "POLYMON_APP_ID", "POLYMON_WORKER_ID",
            "POLYMON_KAFKA_SECURITY_PROTOCOL", "POLYMON_ACL_PRINCIPALS"} <= used
    unknown = sorted(name for name in used
                     if name.removeprefix("POLYMON_").lower() not in Settings.model_fields)
    assert not unknown, f"not fields of streams.settings.Settings: {unknown}"


def test_containers_get_only_settings_and_kafka_image_variables(compose: dict[str, Any]) -> None:
    # the init scripts take arguments, not variables of their own
    for name, service in _services(compose).items():
        image = str(service.get("image", ""))
        env = _env(service)
        if image.startswith("apache/kafka"):
            odd = [key for key in env if not key.startswith("KAFKA_") and key != "CLUSTER_ID"]
        elif name in POLYMON_SERVICES:
            odd = [key for key in env if not key.startswith("POLYMON_")]
        else:
            continue
        assert not odd, f"{name}: {odd} are neither polymon settings nor Kafka's"
    for name in ("certs-init", "users-init"):
        assert not _env(_services(compose)[name])


@pytest.mark.parametrize("service", POLYMON_SERVICES)
def test_polymon_environments_are_valid_settings(
    compose: dict[str, Any], service: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = _services(compose)[service]
    env = {k: _interpolated(v) for k, v in _env(spec).items() if k.startswith("POLYMON")}
    # the CA file is in the volume certs-init fills (checked below); a stand-in here
    ca_file = env["POLYMON_KAFKA_SSL_CA_FILE"]
    assert _volume_holding(spec, ca_file) == "kafka-ca"
    stand_in = tmp_path / "ca.crt"
    stand_in.write_text("")
    env["POLYMON_KAFKA_SSL_CA_FILE"] = str(stand_in)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()  # raises on a value of the wrong type or shape
    assert settings.kafka_bootstrap == env["POLYMON_KAFKA_BOOTSTRAP"]
    assert settings.kafka_ssl_ca_file == stand_in


def test_shared_polymon_env_is_one_anchor(compose: dict[str, Any]) -> None:
    shared = compose["x-polymon-env"]
    for name in POLYMON_SERVICES:
        env = _env(_services(compose)[name])
        assert {k: env[k] for k in shared} == {k: str(v) for k, v in shared.items()}, name


def test_topics_init_creates_then_checks_topics_once(compose: dict[str, Any]) -> None:
    init = _services(compose)["topics-init"]
    assert str(init["restart"]) == "no"
    command = " ".join(_command(init))
    assert "polymon topics create" in command
    assert command.index("topics create") < command.index("topics check")
    assert "build" in init or "polymon" in str(init.get("image"))


# --- Kafka security -----------------------------------------------------------------


def test_no_listener_a_client_can_reach_is_plaintext(compose: dict[str, Any]) -> None:
    env = _kafka_env(compose)
    listeners = _listeners(env["KAFKA_LISTENERS"])
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = _protocols(compose)
    assert set(listeners) == set(protocols), "every listener needs a security protocol"
    published = set(_published(_services(compose)["kafka"]))
    assert published, "the EXTERNAL listener is published for the host"
    for name, (host, port) in listeners.items():
        protocol = protocols[name]
        if name in advertised or port in published:
            # clients: authenticated and encrypted
            assert protocol == "SASL_SSL", f"{name} is {protocol}"
        else:
            assert host in LOOPBACK, f"unadvertised listener {name} must bind loopback"
    plaintext = [name for name, protocol in protocols.items()
                 if protocol in ("PLAINTEXT", "SASL_PLAINTEXT")]
    assert plaintext == env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(",")
    for name in plaintext:
        assert name not in advertised and listeners[name][1] not in published
    assert protocols[env["KAFKA_INTER_BROKER_LISTENER_NAME"]] == "SASL_SSL"


def test_the_authorizer_denies_what_no_acl_allows(compose: dict[str, Any]) -> None:
    env = _kafka_env(compose)
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"] == AUTHORIZER  # the one the tests run
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"].lower() == "false"
    supers = _super_users(compose)
    # ANONYMOUS is the loopback controller listener's principal (checked above); the
    # admin is the broker's own login
    assert supers == {f"User:{_jaas_login(_admin_jaas(compose))[0]}", "User:ANONYMOUS"}
    principals = _acl_principals(compose)
    ordinary = {principals.worker, *principals.runners, *principals.producers,
                *principals.command_writers}
    assert not ordinary & supers, "a super user bypasses every ACL"


def _admin_jaas(compose: dict[str, Any]) -> str:
    env = _kafka_env(compose)
    inter_broker = env["KAFKA_INTER_BROKER_LISTENER_NAME"]
    return _interpolated(env[_jaas_variable(inter_broker)])


def _jaas_variable(listener: str) -> str:
    mechanism = SCRAM_MECHANISM.replace("-", "___")
    return f"KAFKA_LISTENER_NAME_{listener}_{mechanism}_SASL_JAAS_CONFIG"


def test_sasl_listeners_use_scram_with_a_login_module_each(compose: dict[str, Any]) -> None:
    env = _kafka_env(compose)
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == SCRAM_MECHANISM
    assert env["KAFKA_SASL_MECHANISM_INTER_BROKER_PROTOCOL"] == SCRAM_MECHANISM
    for name, protocol in _protocols(compose).items():
        if protocol.startswith("SASL_"):
            variable = _jaas_variable(name)
            # what the image writes into server.properties
            assert _property(variable) == (f"listener.name.{name.lower()}."
                                           f"{SCRAM_MECHANISM.lower()}.sasl.jaas.config")
            assert "ScramLoginModule required" in env.get(variable, ""), variable
    # the broker's own login is the super user's, whose credential kafka-start.sh formats
    admin, password = _jaas_login(_admin_jaas(compose))
    assert admin and len(password) >= 8
    kafka = _services(compose)["kafka"]
    script = _host_file(kafka, _command(kafka)[1])
    assert script is not None
    assert _jaas_variable(env["KAFKA_INTER_BROKER_LISTENER_NAME"]) in script.read_text()


def test_the_broker_reads_the_tls_files_certs_init_writes(compose: dict[str, Any]) -> None:
    services = _services(compose)
    kafka, certs = services["kafka"], services["certs-init"]
    words = _command(certs)
    script = next(i for i, word in enumerate(words) if word.endswith("certs-init.sh"))
    assert (_host_file(certs, words[script]) or Path()).is_file()
    secrets_dir, ca_dir, hostnames = words[script + 1:script + 4]
    env = _kafka_env(compose)
    for variable, name in (("KAFKA_SSL_KEYSTORE_LOCATION", "broker.p12"),
                           ("KAFKA_SSL_TRUSTSTORE_LOCATION", "ca.crt")):
        path = PurePosixPath(env[variable])
        written = _volume_holding(certs, f"{secrets_dir}/{name}")
        assert path.name == name and written, variable
        assert _volume_holding(kafka, str(path)) == written, variable
    assert env["KAFKA_SSL_KEYSTORE_TYPE"] == "PKCS12"
    assert env["KAFKA_SSL_TRUSTSTORE_TYPE"] == "PEM"
    # polymon's clients trust the CA certificate, from the volume certs-init writes it to
    ca_volume = _volume_holding(certs, ca_dir)
    assert ca_volume and ca_volume != _volume_holding(certs, secrets_dir)
    for name in (*POLYMON_SERVICES, "users-init"):
        service = services[name]
        ca_file = (_users_init(compose)[1] if name == "users-init"
                   else _env(service)["POLYMON_KAFKA_SSL_CA_FILE"])
        assert PurePosixPath(ca_file).name == "ca.crt"
        assert _volume_holding(service, ca_file) == ca_volume, name
        assert any(v.startswith(f"{ca_volume}:") and v.endswith(":ro")
                   for v in service["volumes"]), f"{name} mounts the CA read-only"
    # the certificate names every host a client is told to connect to
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    assert {host for host, _ in advertised.values()} <= set(hostnames.split(","))


@pytest.mark.parametrize("service", POLYMON_SERVICES)
def test_every_polymon_container_authenticates(compose: dict[str, Any], service: str) -> None:
    env = _env(_services(compose)[service])
    assert env["POLYMON_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["POLYMON_KAFKA_SASL_MECHANISM"] in _kafka_env(compose)[
        "KAFKA_SASL_ENABLED_MECHANISMS"].split(",")
    assert env["POLYMON_KAFKA_SASL_USERNAME"]
    password = env["POLYMON_KAFKA_SASL_PASSWORD"]
    assert VARIABLE.fullmatch(password), f"{service}: the password must come from a variable"
    assert len(_interpolated(password)) >= 8


def test_passwords_come_from_variables_with_one_marked_default() -> None:
    text = COMPOSE_FILE.read_text()
    defaults: dict[str, set[str]] = {}
    for match in VARIABLE.finditer(text):
        defaults.setdefault(match.group(1), set()).add(match.group(2) or "")
    passwords = {name: values for name, values in defaults.items() if "PASSWORD" in name}
    assert set(passwords) == {"ADMIN_KAFKA_PASSWORD", "WORKER_KAFKA_PASSWORD",
                              "RUNNER_KAFKA_PASSWORD", "FEEDS_KAFKA_PASSWORD"}
    for name, values in passwords.items():
        # one default wherever it is used, or the services would disagree when it is unset
        assert len(values) == 1, f"{name} has defaults {values}"
        (default,) = values
        assert "change-me" in default and re.fullmatch(r"[A-Za-z0-9_.-]{8,128}", default)
        # a compose variable, not a container setting
        assert not name.startswith(("POLYMON_", "KAFKA_"))
    # no password is written out anywhere but in those defaults
    for literal in re.findall(r'password="([^"$]+)"', text):
        pytest.fail(f"literal password {literal!r} in docker-compose.yml")


def test_users_init_creates_every_principal_with_the_passwords_services_log_in_with(
    compose: dict[str, Any],
) -> None:
    services = _services(compose)
    bootstrap, _, (admin, admin_password), users = _users_init(compose)
    assert (admin, admin_password) == _jaas_login(_admin_jaas(compose))
    assert f"User:{admin}" in _super_users(compose)
    assert admin not in users
    for name in ("acls-init", "topics-init"):
        env = {k: _interpolated(v) for k, v in _env(services[name]).items()}
        assert (env["POLYMON_KAFKA_SASL_USERNAME"],
                env["POLYMON_KAFKA_SASL_PASSWORD"]) == (admin, admin_password), name
    for name in WORKERS:
        env = {k: _interpolated(v) for k, v in _env(services[name]).items()}
        assert users.get(env["POLYMON_KAFKA_SASL_USERNAME"]) == env[
            "POLYMON_KAFKA_SASL_PASSWORD"], name
    principals = _acl_principals(compose)
    named = {principals.worker, *principals.runners, *principals.producers,
             *principals.command_writers}
    assert {f"User:{user}" for user in users} == named
    script = _host_file(services["users-init"], _command(services["users-init"])[1])
    assert script is not None and script.is_file()
    assert bootstrap == _env(services["topics-init"])["POLYMON_KAFKA_BOOTSTRAP"]


def test_acls_init_applies_the_deployment_acls_as_the_super_user(
    compose: dict[str, Any],
) -> None:
    services = _services(compose)
    init = services["acls-init"]
    assert _command(init)[-2:] == ["acls", "--apply"]
    assert str(init["restart"]) == "no"
    principals = _acl_principals(compose)
    env = _env(init)
    assert f"User:{env['POLYMON_KAFKA_SASL_USERNAME']}" in _super_users(compose)
    # the workers log in as the principal the ACLs are written for
    for name in WORKERS:
        assert principals.worker == f"User:{_env(services[name])['POLYMON_KAFKA_SASL_USERNAME']}"
    assert principals.runners and principals.producers
    group = env.get("POLYMON_TOPIC_PREFIX", "") + env["POLYMON_APP_ID"]
    acls = deployment_acls(load_topic_specs(), env.get("POLYMON_TOPIC_PREFIX", ""), group,
                           principals)
    writers = {acl.principal for acl in acls
               if acl.operation == "WRITE" and acl.name == "control.pauses"}
    assert writers == {principals.worker}


def test_inits_run_in_order_certs_users_acls_topics_workers(compose: dict[str, Any]) -> None:
    services = _services(compose)
    waits = {name: _depends(service) for name, service in services.items()}

    def before(name: str) -> set[str]:
        found: set[str] = set()
        stack = list(waits[name])
        while stack:
            dependency = stack.pop()
            if dependency not in found:
                found.add(dependency)
                stack += list(waits[dependency])
        return found

    chain = ["certs-init", "kafka", "users-init", "acls-init", "topics-init"]
    for earlier, later in itertools.pairwise(chain):
        condition = "service_healthy" if earlier == "kafka" else "service_completed_successfully"
        assert waits[later].get(earlier) == condition, f"{later} must wait for {earlier}"
    for name in WORKERS:
        assert set(chain) <= before(name)
        assert waits[name] == {"topics-init": "service_completed_successfully"}
    for name in INITS:
        assert str(services[name].get("restart")) == "no", f"{name} is a one-shot"
        assert name not in before(name)


def test_scripts_the_services_run_are_the_repos(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        for word in _command(service):
            if word.endswith(".sh") and word.startswith("/opt/polymon/"):
                host = _host_file(service, word)
                assert host is not None and host.is_file(), f"{name}: {word} is not mounted"
                assert host.parent == ROOT / "ops" / "compose"


@pytest.mark.skipif(not (shutil.which("keytool") and shutil.which("openssl")),
                    reason="needs the JRE's keytool and openssl")
def test_certs_init_makes_a_certificate_polymons_tls_client_accepts(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    words = _command(_services(compose)["certs-init"])
    script = next(i for i, word in enumerate(words) if word.endswith("certs-init.sh"))
    hostnames = words[script + 3]
    secrets, ca_dir = tmp_path / "secrets", tmp_path / "ca"
    run = [str(ROOT / "ops" / "compose" / "certs-init.sh"), str(secrets), str(ca_dir), hostnames]
    subprocess.run(["sh", *run], check=True, capture_output=True, timeout=120)
    keystore = secrets / "broker.p12"
    assert (secrets / "keystore.password").stat().st_mode & 0o077 == 0
    assert (ca_dir / "ca.crt").read_bytes() == (secrets / "ca.crt").read_bytes()
    made = keystore.read_bytes()
    again = subprocess.run(["sh", *run], check=True, capture_output=True, text=True, timeout=60)
    assert "nothing to do" in again.stdout and keystore.read_bytes() == made

    # the broker's key and chain as Kafka will serve them
    pem = tmp_path / "broker.pem"
    subprocess.run(["openssl", "pkcs12", "-in", str(keystore), "-nodes", "-out", str(pem),
                    "-passin", f"file:{secrets / 'keystore.password'}"],
                   check=True, capture_output=True, timeout=60)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pem)
    client = ssl_context(Settings(
        kafka_security_protocol="SASL_SSL", kafka_sasl_username="polymon",
        kafka_sasl_password="polymon-dev-change-me", kafka_ssl_ca_file=ca_dir / "ca.crt"))
    assert client is not None
    for host in hostnames.split(","):
        _handshake(server, client, host)
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(server, client, "not-the-broker")


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, hostname: str) -> None:
    """A TLS handshake in memory; raises what the client's verification raises."""
    pipes = [ssl.MemoryBIO() for _ in range(4)]
    sides = [server.wrap_bio(pipes[0], pipes[1], server_side=True),
             client.wrap_bio(pipes[2], pipes[3], server_hostname=hostname)]
    done = [False, False]
    for _ in range(20):
        for index, side in enumerate(sides):
            if not done[index]:
                try:
                    side.do_handshake()
                    done[index] = True
                except ssl.SSLWantReadError:
                    pass
        pipes[2].write(pipes[1].read())  # server -> client
        pipes[0].write(pipes[3].read())  # client -> server
        if all(done):
            return
    raise AssertionError("the handshake did not finish")


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
