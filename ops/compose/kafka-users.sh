#!/usr/bin/env bash
# One shot (docker-compose.yml, users-init): create or update the SCRAM-SHA-512 credential
# of each of polymon's principals, logged in as the super user. Idempotent: a re-run sets
# the passwords given, which is also how one is rotated.
#
#   kafka-users.sh BOOTSTRAP CA_FILE ADMIN:PASSWORD USER:PASSWORD...
set -euo pipefail
if (( $# < 4 )); then
    echo "usage: kafka-users.sh BOOTSTRAP CA_FILE ADMIN:PASSWORD USER:PASSWORD..." >&2
    exit 2
fi
bootstrap=$1 ca_file=$2 admin=$3
shift 3
for pair in "$admin" "$@"; do
    # SCRAM's [password=...] syntax and the JAAS line quote neither ',', ']' nor '"'
    if [[ ! $pair =~ ^[A-Za-z0-9_.-]{1,64}:[A-Za-z0-9_.-]{8,128}$ ]]; then
        echo "kafka-users: user ${pair%%:*}: names and passwords are letters, digits, '_'," \
             "'.', '-' (passwords of 8 to 128)" >&2
        exit 2
    fi
done

config=$(mktemp)  # 0600
trap 'rm -f "$config"' EXIT
cat > "$config" <<PROPERTIES
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="${admin%%:*}" password="${admin#*:}";
ssl.truststore.type=PEM
ssl.truststore.location=$ca_file
PROPERTIES

for pair in "$@"; do
    /opt/kafka/bin/kafka-configs.sh --bootstrap-server "$bootstrap" --command-config "$config" \
        --alter --entity-type users --entity-name "${pair%%:*}" \
        --add-config "SCRAM-SHA-512=[password=${pair#*:}]"
done
