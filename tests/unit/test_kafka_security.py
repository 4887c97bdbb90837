from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from streams.kafka_security import (
    aiokafka_security,
    faust_credentials,
    librdkafka_config,
    redacted,
)
from streams.settings import Settings

SASL = {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "SCRAM-SHA-256",
        "kafka_sasl_username": "polymon", "kafka_sasl_password": "s3cret-password"}


def test_plaintext_by_default() -> None:
    settings = Settings()
    assert librdkafka_config("b:9092", settings) == {"bootstrap.servers": "b:9092",
                                                     "security.protocol": "PLAINTEXT"}
    assert aiokafka_security(settings) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(settings) is None


def test_sasl_reaches_both_client_families() -> None:
    settings = Settings(**SASL)
    config = librdkafka_config("b:9092", settings)
    assert config["sasl.mechanisms"] == "SCRAM-SHA-256"
    assert config["sasl.username"] == "polymon" and config["sasl.password"] == "s3cret-password"
    aio = aiokafka_security(settings)
    assert aio["sasl_mechanism"] == "SCRAM-SHA-256" and aio["security_protocol"] == "SASL_PLAINTEXT"
    credentials = faust_credentials(settings)
    assert credentials.username == "polymon" and credentials.mechanism.value == "SCRAM-SHA-256"
    assert "s3cret" not in repr(credentials)


def test_secrets_stay_out_of_reprs_hashes_and_redacted_configs() -> None:
    settings = Settings(**SASL)
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.model_dump())
    assert Settings(**{**SASL, "kafka_sasl_password": "other-password"}).config_version == \
        settings.config_version
    assert "s3cret" not in str(redacted(librdkafka_config("b:9092", settings)))
    tokens = {"api_tokens": {"t" * 20: {"actor": "alice", "rights": ["read"]}}}
    assert Settings(**tokens).config_version == Settings().config_version


def test_sasl_without_credentials_is_refused() -> None:
    with pytest.raises(ValidationError, match="needs kafka_sasl_username and kafka_sasl_password"):
        Settings(kafka_security_protocol="SASL_SSL")


def test_tls_files_must_exist_and_need_a_tls_protocol(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no such file"):
        Settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=tmp_path / "missing.pem")
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(ValidationError, match="use SSL or SASL_SSL"):
        Settings(kafka_ssl_ca_file=ca)
    with pytest.raises(ValidationError, match="go together"):
        Settings(kafka_security_protocol="SSL", kafka_ssl_cert_file=ca)
