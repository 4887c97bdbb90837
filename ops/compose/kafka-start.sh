#!/usr/bin/env bash
# The kafka service's entrypoint (docker-compose.yml): the apache/kafka image's own start
# (/etc/kafka/docker/run: KAFKA_* variables -> server.properties, storage formatted, broker
# started) plus what the image cannot do from variables alone:
#  - the TLS keystore's password, which certs-init generated into the secrets volume;
#  - the super user's SCRAM credential, written into the metadata when the storage is first
#    formatted: the broker logs in with it before any admin client could create it. The
#    super user is the one the INTERNAL listener's JAAS line logs in as.
set -euo pipefail
secrets=/etc/kafka/secrets
config=/opt/kafka/config

if [[ ! -s $secrets/broker.p12 || ! -s $secrets/keystore.password ]]; then
    echo "kafka-start: no TLS keystore in $secrets (the certs-init service makes it)" >&2
    exit 1
fi
KAFKA_SSL_KEYSTORE_PASSWORD=$(<"$secrets/keystore.password")
KAFKA_SSL_KEY_PASSWORD=$KAFKA_SSL_KEYSTORE_PASSWORD
export KAFKA_SSL_KEYSTORE_PASSWORD KAFKA_SSL_KEY_PASSWORD

jaas=${KAFKA_LISTENER_NAME_INTERNAL_SCRAM___SHA___512_SASL_JAAS_CONFIG:-}
admin=$(sed -n 's/.*username="\([A-Za-z0-9_.-]*\)".*/\1/p' <<<"$jaas")
password=$(sed -n 's/.*password="\([A-Za-z0-9_.-]*\)".*/\1/p' <<<"$jaas")
if [[ -z $admin || ${#password} -lt 8 ]]; then
    echo "kafka-start: the INTERNAL listener's JAAS line needs username=\"...\" and" \
         "password=\"...\" (letters, digits, '_', '.', '-'; passwords of 8 or more)" >&2
    exit 1
fi

/etc/kafka/docker/configure
# The image's wrapper renders server.properties and formats the storage, but cannot add
# SCRAM credentials: it formats a scratch directory, the real one is formatted below.
scratch=$(mktemp -d)
KAFKA_LOG_DIRS=$scratch /opt/kafka/bin/kafka-run-class.sh kafka.docker.KafkaDockerWrapper \
    setup --default-configs-dir /etc/kafka/docker --mounted-configs-dir /mnt/shared/config \
    --final-configs-dir "$config"
rm -rf "$scratch"
sed -i "s|^log\.dirs=.*|log.dirs=$KAFKA_LOG_DIRS|" "$config/server.properties"

if [[ ! -e ${KAFKA_LOG_DIRS%%,*}/meta.properties ]]; then
    # later starts keep the metadata: change a password with kafka-configs.sh, not here.
    # Its output lists the credential's salted keys: not for the logs (errors are on stderr).
    /opt/kafka/bin/kafka-storage.sh format --cluster-id "$CLUSTER_ID" \
        --config "$config/server.properties" \
        --add-scram "SCRAM-SHA-512=[name=$admin,password=$password]" > /dev/null
    echo "kafka-start: storage formatted, with the SCRAM credential of $admin"
fi

# The super user's client configuration: the healthcheck's, and admin tasks, e.g.
#   docker compose exec kafka /opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9092 \
#       --command-config /opt/kafka/config/admin.properties --list
(
    umask 077
    cat > "$config/admin.properties" <<PROPERTIES
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=$jaas
ssl.truststore.type=PEM
ssl.truststore.location=$secrets/ca.crt
PROPERTIES
)
exec /opt/kafka/bin/kafka-server-start.sh "$config/server.properties"
