# Shared by scripts/test and .ci/run: installs what Slipway's tests need from Debian and
# starts the services they talk to. Source it, then call the functions.

# Installs the Debian packages the test suite uses, if any is missing.
install_test_packages() {
    # chromium and chromium-driver: the dashboard's browser tests (headless); fonts-liberation
    # (a recommendation, skipped below) gives their screenshots the usual Arial-like fonts.
    # openjdk-17-jdk-headless and maven: the Java buildpack's tests (the Maven wrapper needs
    # curl and unzip to fetch its Maven).
    local packages=(git openssh-client postgresql sqlite3 ca-certificates skopeo bubblewrap python3-venv docker-registry busybox-static runc umoci passt chromium chromium-driver fonts-liberation openjdk-17-jdk-headless maven curl unzip)
    local missing=()
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    # pasta gives each sandbox its own network; it runs as the app's uid and needs the tun
    # device usable by everyone, as Debian's udev rules make it (some VM images do not).
    if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
        local sudo_tun=""
        [ "$(id -u)" -ne 0 ] && sudo_tun="sudo"
        $sudo_tun chmod 0666 /dev/net/tun
    fi
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "==> installing ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Starts a throwaway PostgreSQL cluster on a free loopback port, owned by this run, and
# exports SLIPWAY_TEST_POSTGRES_URL. stop_postgres removes it.
start_postgres() {
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$bin" ]; then
        echo "PostgreSQL server binaries not found under /usr/lib/postgresql" >&2
        return 1
    fi
    PG_DIR=$(mktemp -d /tmp/slipway-pg.XXXXXX)
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # PostgreSQL refuses to run as root; run it as the postgres user in that case.
    local as=()
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres "$PG_DIR"
        as=(runuser -u postgres --)
    fi
    "${as[@]}" "$bin/initdb" -D "$PG_DIR/data" -U postgres --auth=trust --no-sync >"$PG_DIR/initdb.log" 2>&1 \
        || { cat "$PG_DIR/initdb.log" >&2; return 1; }
    "${as[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w \
        -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400" start >/dev/null \
        || { cat "$PG_DIR/server.log" >&2; return 1; }
    PG_CTL="$bin/pg_ctl"
    PG_AS=("${as[@]}")
    export SLIPWAY_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
    echo "==> PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}

stop_postgres() {
    [ -n "${PG_DIR:-}" ] || return 0
    "${PG_AS[@]}" "$PG_CTL" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
}

# Starts Debian's docker-registry (CNCF Distribution) on a free loopback port with its own
# storage, and exports SLIPWAY_TEST_REGISTRY=127.0.0.1:PORT. stop_registry removes it.
start_registry() {
    REGISTRY_DIR=$(mktemp -d /tmp/slipway-registry.XXXXXX)
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$REGISTRY_DIR/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $REGISTRY_DIR/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YAML
    /usr/bin/docker-registry serve "$REGISTRY_DIR/config.yml" >"$REGISTRY_DIR/registry.log" 2>&1 &
    REGISTRY_PID=$!
    local tries=0
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        tries=$((tries + 1))
        if [ "$tries" -gt 100 ] || ! kill -0 "$REGISTRY_PID" 2>/dev/null; then
            cat "$REGISTRY_DIR/registry.log" >&2
            return 1
        fi
        sleep 0.1
    done
    export SLIPWAY_TEST_REGISTRY="127.0.0.1:$port"
    echo "==> docker-registry on 127.0.0.1:$port"
}

stop_registry() {
    [ -n "${REGISTRY_PID:-}" ] && kill "$REGISTRY_PID" 2>/dev/null
    [ -n "${REGISTRY_DIR:-}" ] && rm -rf "$REGISTRY_DIR"
    return 0
}
