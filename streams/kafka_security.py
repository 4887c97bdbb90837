"""How every polymon client authenticates to Kafka, from one set of settings.

Two client families speak to the broker: librdkafka (confluent-kafka: admin, replay,
produce/consume, PauseGuard) and aiokafka (the Faust worker, its producer, the read
model, the member check). Each takes the same ``POLYMON_KAFKA_*`` security settings in
its own spelling; this module is the only place that spells them, so no client is left
on PLAINTEXT when the deployment is not.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.settings import Settings


def librdkafka_security(settings: Settings) -> dict[str, str]:
    """The security keys of a confluent-kafka client's configuration."""
    config = {"security.protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol.startswith("SASL_"):
        assert settings.kafka_sasl_username and settings.kafka_sasl_password  # validated
        config.update({
            "sasl.mechanisms": settings.kafka_sasl_mechanism,
            "sasl.username": settings.kafka_sasl_username,
            "sasl.password": settings.kafka_sasl_password.get_secret_value(),
        })
    if settings.kafka_ssl_ca_file is not None:
        config["ssl.ca.location"] = str(settings.kafka_ssl_ca_file)
    if settings.kafka_ssl_cert_file is not None and settings.kafka_ssl_key_file is not None:
        config["ssl.certificate.location"] = str(settings.kafka_ssl_cert_file)
        config["ssl.key.location"] = str(settings.kafka_ssl_key_file)
    if settings.kafka_ssl_key_password is not None:
        config["ssl.key.password"] = settings.kafka_ssl_key_password.get_secret_value()
    return config


def librdkafka_config(bootstrap: str, settings: Settings | None = None) -> dict[str, Any]:
    """A confluent-kafka client's bootstrap and security (this process's settings unless
    given); callers add their own keys."""
    settings = settings or _settings()
    return {"bootstrap.servers": bootstrap, **librdkafka_security(settings)}


def _settings() -> Settings:
    from streams.settings import get_settings

    return get_settings()


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of aiokafka clients (None without TLS): the brokers' certificates
    checked against the CA file (or the system's store), hostnames checked."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context = ssl.create_default_context(
        cafile=str(settings.kafka_ssl_ca_file) if settings.kafka_ssl_ca_file else None)
    if settings.kafka_ssl_cert_file is not None and settings.kafka_ssl_key_file is not None:
        password = settings.kafka_ssl_key_password
        context.load_cert_chain(str(settings.kafka_ssl_cert_file),
                                str(settings.kafka_ssl_key_file),
                                password.get_secret_value() if password else None)
    return context


def aiokafka_security(settings: Settings | None = None) -> dict[str, Any]:
    """The security keyword arguments of an aiokafka client (this process's settings
    unless given)."""
    settings = settings or _settings()
    config: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    context = ssl_context(settings)
    if context is not None:
        config["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL_"):
        assert settings.kafka_sasl_username and settings.kafka_sasl_password  # validated
        config.update({
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": settings.kafka_sasl_password.get_secret_value(),
        })
    return config


def faust_credentials(settings: Settings) -> Any:
    """The Faust app's ``broker_credentials`` (None: PLAINTEXT)."""
    from faust.auth import SASLCredentials, SSLCredentials

    context = ssl_context(settings)
    if settings.kafka_security_protocol.startswith("SASL_"):
        assert settings.kafka_sasl_username and settings.kafka_sasl_password  # validated
        return SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            mechanism=settings.kafka_sasl_mechanism, ssl_context=context)
    if context is not None:
        return SSLCredentials(context)
    return None


def redacted(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` fit for a log line or an error: secrets replaced."""
    return {key: ("***" if any(word in key for word in ("password", "secret", "token"))
                  else value) for key, value in config.items()}
