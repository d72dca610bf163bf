#!/usr/bin/env bash
# A throw-away PostgreSQL cluster on a free loopback port, for the postgres
# connector's tests and benchmark. Real PostgreSQL, never a mock.
#
#   eval "$(scripts/pg.sh start)"   # prints export lines: WEFT_TEST_PG_*
#   scripts/pg.sh stop              # stops it and removes its files
#
# `start` installs Debian's `postgresql` package when no server binaries are
# found, creates a fresh cluster in $WEFT_PG_DIR (default /tmp/weft-pg-UID)
# and starts it on 127.0.0.1 only, on the first free port it can bind.
# PostgreSQL refuses to run as root, so as root the cluster belongs to the
# `postgres` user the package creates. Idempotent: a running cluster of an
# earlier `start` is reused.
#
# Roles: `weft` (superuser, SCRAM-SHA-256), `weft_md5` (superuser, md5) and
# `weft_tls` (superuser, SCRAM-SHA-256, over TLS only), passwords random per
# cluster. The local socket (in the cluster's dir) trusts everyone, for the
# tests' own setup; TCP needs the password. TLS is on, with a server
# certificate for the name `localhost` (not the IP) signed by a CA made for
# the cluster; a second, unrelated CA is there to be distrusted.
set -euo pipefail

DIR="${WEFT_PG_DIR:-/tmp/weft-pg-$(id -u)}"
ENV_FILE="$DIR/env"

say() { echo "pg.sh: $*" >&2; }

bin_dir() {
    local d
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    [[ -n "$d" && -x "$d/initdb" ]] && echo "$d"
}

install_postgres() {
    say "installing PostgreSQL (Debian package postgresql)"
    local sudo=()
    [[ "$(id -u)" == 0 ]] || sudo=(sudo -n)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
}

# Runs a server binary as the cluster's owner.
as_owner() {
    if [[ "$(id -u)" == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# A CA, a server certificate it signs for `localhost`, and an unrelated CA
# (P-256 keys: quick to make). openssl comes with Debian's postgresql (ssl-cert).
make_certificates() {
    local t="$DIR/tls"
    mkdir -p "$t"
    local ca_ext="basicConstraints=critical,CA:TRUE"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj "/CN=weft test CA" -addext "$ca_ext" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$t/ca.key" -out "$t/ca.crt" >>"$t/openssl.log" 2>&1 || return 1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj "/CN=another CA" -addext "$ca_ext" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$t/other-ca.key" -out "$t/other-ca.crt" >>"$t/openssl.log" 2>&1 || return 1
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=localhost" -keyout "$t/server.key" -out "$t/server.csr" >>"$t/openssl.log" 2>&1 || return 1
    printf '%s\n' "subjectAltName=DNS:localhost" "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$t/server.ext"
    openssl x509 -req -in "$t/server.csr" -CA "$t/ca.crt" -CAkey "$t/ca.key" -CAcreateserial \
        -days 3650 -extfile "$t/server.ext" -out "$t/server.crt" >>"$t/openssl.log" 2>&1 || return 1
    chmod 600 "$t/server.key"
    chmod 755 "$t"
    chmod 644 "$t"/*.crt
    [[ "$(id -u)" == 0 ]] && chown -R postgres "$t"
    return 0
}

running() {
    [[ -f "$ENV_FILE" && -d "$DIR/data" ]] && as_owner "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1
}

start() {
    BIN="$(bin_dir || true)"
    if [[ -z "$BIN" ]]; then
        install_postgres
        BIN="$(bin_dir)"
    fi
    if running; then
        cat "$ENV_FILE"
        return
    fi
    rm -rf "$DIR"
    mkdir -p "$DIR/sock"
    local password md5_password
    password="$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
    md5_password="$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
    printf '%s\n' "$password" >"$DIR/pw"
    chmod 700 "$DIR"
    [[ "$(id -u)" == 0 ]] && chown -R postgres "$DIR"
    as_owner "$BIN/initdb" -D "$DIR/data" -U weft --pwfile="$DIR/pw" -E UTF8 --no-locale \
        --auth-local=trust --auth-host=scram-sha-256 >"$DIR/initdb.log" 2>&1 \
        || { cat "$DIR/initdb.log" >&2; exit 1; }
    command -v openssl >/dev/null || { say "openssl is missing (apt-get install openssl)"; exit 1; }
    make_certificates || { cat "$DIR/tls/openssl.log" >&2; say "could not make the test certificates"; exit 1; }
    # md5 and TLS-only for their own roles, ahead of the lines initdb wrote.
    local hba="$DIR/data/pg_hba.conf"
    { echo "host all weft_md5 127.0.0.1/32 md5"
      echo "hostssl all weft_tls 127.0.0.1/32 scram-sha-256"
      echo "host all weft_tls 127.0.0.1/32 reject"
      grep -v '^\s*#' "$hba" | grep -v '^\s*$'; } >"$hba.new"
    mv "$hba.new" "$hba"
    [[ "$(id -u)" == 0 ]] && chown postgres "$hba"
    local port="" attempt
    for attempt in $(seq 1 20); do
        local try=$((20000 + (RANDOM % 30000)))
        if as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 30 \
            -o "-c listen_addresses=127.0.0.1 -p $try -k $DIR/sock -c fsync=off -c full_page_writes=off -c max_connections=200 -c ssl=on -c ssl_cert_file=$DIR/tls/server.crt -c ssl_key_file=$DIR/tls/server.key" \
            start >/dev/null 2>&1; then
            port="$try"
            break
        fi
        say "port $try taken (attempt $attempt); trying another"
    done
    if [[ -z "$port" ]]; then
        tail -n 20 "$DIR/server.log" >&2 || true
        say "could not start PostgreSQL"
        exit 1
    fi
    "$BIN/psql" -q -h "$DIR/sock" -p "$port" -U weft -d postgres -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET password_encryption = 'md5';
CREATE ROLE weft_md5 LOGIN SUPERUSER PASSWORD '$md5_password';
SET password_encryption = 'scram-sha-256';
CREATE ROLE weft_tls LOGIN SUPERUSER PASSWORD '$password';
SQL
    cat >"$ENV_FILE" <<ENV
export WEFT_TEST_PG_HOST=127.0.0.1
export WEFT_TEST_PG_PORT=$port
export WEFT_TEST_PG_USER=weft
export WEFT_TEST_PG_PASSWORD=$password
export WEFT_TEST_PG_MD5_USER=weft_md5
export WEFT_TEST_PG_MD5_PASSWORD=$md5_password
export WEFT_TEST_PG_SOCKET_DIR=$DIR/sock
export WEFT_TEST_PG_BIN=$BIN
export WEFT_TEST_PG_TLS_USER=weft_tls
export WEFT_TEST_PG_CA_FILE=$DIR/tls/ca.crt
export WEFT_TEST_PG_OTHER_CA_FILE=$DIR/tls/other-ca.crt
ENV
    say "PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port ($DIR)"
    cat "$ENV_FILE"
}

stop() {
    BIN="$(bin_dir || true)"
    if [[ -n "$BIN" && -d "$DIR/data" ]]; then
        as_owner "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$DIR"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
