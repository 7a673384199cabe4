# Builds Pebble, Let's Encrypt's small ACME test server, and pebble-challtestsrv (its mock
# DNS server) for Slipway's ACME tests, from the Go module proxy.
#
# Source it and call build_pebble, or run it as a script. The binaries go to
#   ${SLIPWAY_CACHE_DIR:-$HOME/.cache/slipway}/pebble/<version>/bin
# with Pebble's test certificates beside them (localhost cert.pem and key.pem for its own
# HTTPS API, and pebble.minica.pem, the CA that signed them), and are reused while the
# version below is unchanged. A cold build takes well under a minute.
#
# Exports SLIPWAY_PEBBLE_BIN, which crates/test-support's `pebble` module reads.

. "$(dirname "${BASH_SOURCE[0]}")/go-build.sh"

PEBBLE_VERSION=v2.10.3

pebble_dir() {
    echo "${SLIPWAY_CACHE_DIR:-$HOME/.cache/slipway}/pebble/$PEBBLE_VERSION"
}

build_pebble() {
    if ! command -v go >/dev/null; then
        echo "the ACME tests need Go (1.26 or newer) to build Pebble: install it from https://go.dev/dl/" >&2
        return 1
    fi
    local dir
    dir=$(pebble_dir)
    export SLIPWAY_PEBBLE_BIN="$dir/bin"
    go_build_cached "Pebble $PEBBLE_VERSION" "$dir" _build_pebble
}

_build_pebble() {
    local dir=$1
    GOBIN="$dir/bin.new" go install -ldflags "-s -w" \
        "github.com/letsencrypt/pebble/v2/cmd/pebble@$PEBBLE_VERSION"
    GOBIN="$dir/bin.new" go install -ldflags "-s -w" \
        "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@$PEBBLE_VERSION"
    local src
    src="$(go env GOMODCACHE)/github.com/letsencrypt/pebble/v2@$PEBBLE_VERSION"
    cp "$src/test/certs/localhost/cert.pem" "$src/test/certs/localhost/key.pem" \
        "$src/test/certs/pebble.minica.pem" "$dir/bin.new/"
    # The module cache is read-only; the copies need not be.
    chmod u+w "$dir/bin.new/"*.pem
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    build_pebble
    echo "SLIPWAY_PEBBLE_BIN=$SLIPWAY_PEBBLE_BIN"
fi
