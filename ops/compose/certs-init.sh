#!/bin/sh
# One shot (docker-compose.yml, certs-init): a private CA and the broker's TLS certificate,
# made once with the keytool of the apache/kafka image's JRE (the image has no openssl).
#
#   certs-init.sh SECRETS_DIR CA_DIR HOSTNAMES [OWNER]
#
# writes SECRETS_DIR/broker.p12 (the broker's key and certificate chain, PKCS12),
# SECRETS_DIR/keystore.password (its random password, read by kafka-start.sh) and the CA
# certificate (PEM, what clients trust) as SECRETS_DIR/ca.crt and CA_DIR/ca.crt. HOSTNAMES
# (comma-separated) are the names clients connect to: every advertised listener's host.
# Nothing is rewritten once the files exist. The CA's private key is never stored: to renew
# (or to change HOSTNAMES), remove both volumes and start again.
set -eu
secrets=$1 ca_dir=$2 hostnames=$3 owner=${4:-}

if [ -s "$secrets/broker.p12" ] && [ -s "$secrets/keystore.password" ] \
        && [ -s "$secrets/ca.crt" ] && [ -s "$ca_dir/ca.crt" ]; then
    echo "certs-init: the CA and the broker's keystore exist; nothing to do"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 077
# The keystore's password: random, never typed by anyone (passed by file, not argument).
head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | cut -c1-32 > "$work/password"
store() { keytool -noprompt -storetype PKCS12 -storepass:file "$work/password" "$@"; }

san=$(printf '%s' "$hostnames" | sed 's/[^,][^,]*/dns:&/g')
store -genkeypair -keystore "$work/ca.p12" -alias ca -dname "CN=polymon dev CA" \
    -keyalg RSA -keysize 3072 -validity 3650 \
    -ext bc:c -ext KeyUsage:critical=keyCertSign,cRLSign
store -exportcert -rfc -keystore "$work/ca.p12" -alias ca -file "$work/ca.crt"
store -genkeypair -keystore "$work/broker.p12" -alias broker \
    -dname "CN=${hostnames%%,*}" -keyalg RSA -keysize 2048 -validity 825
store -certreq -keystore "$work/broker.p12" -alias broker -file "$work/broker.csr"
store -gencert -keystore "$work/ca.p12" -alias ca -infile "$work/broker.csr" \
    -outfile "$work/broker.crt" -rfc -validity 825 -ext "SubjectAlternativeName=$san" \
    -ext KeyUsage:critical=digitalSignature,keyEncipherment \
    -ext ExtendedKeyUsage=serverAuth,clientAuth
# the CA first, so that the signed certificate's chain is complete
store -importcert -keystore "$work/broker.p12" -alias ca -file "$work/ca.crt"
store -importcert -keystore "$work/broker.p12" -alias broker -file "$work/broker.crt"

mkdir -p "$secrets" "$ca_dir"
cp "$work/broker.p12" "$work/password" "$work/ca.crt" "$secrets/"
mv "$secrets/password" "$secrets/keystore.password"
cp "$work/ca.crt" "$ca_dir/ca.crt"
chmod 644 "$secrets/ca.crt" "$ca_dir/ca.crt"
chmod 755 "$ca_dir"
if [ -n "$owner" ]; then
    chown "$owner" "$secrets/broker.p12" "$secrets/keystore.password" "$secrets/ca.crt"
fi
echo "certs-init: CA and broker certificate for $hostnames written"
