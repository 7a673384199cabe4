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
    if [ -f "$dir/bin/.complete" ]; then
        echo "==> Pebble $PEBBLE_VERSION (cached in $dir)"
        return 0
    fi
    mkdir -p "$dir"
    # One build at a time per cache: a second run waits for the first and then finds the
    # binaries, instead of deleting the tree it builds in.
    local lock
    exec {lock}>"$dir.lock"
    if ! flock -n "$lock"; then
        echo "==> waiting for another build of Pebble in $dir"
        flock "$lock"
    fi
    if [ -f "$dir/bin/.complete" ]; then
        exec {lock}>&-
        echo "==> Pebble $PEBBLE_VERSION (cached in $dir)"
        return 0
    fi
    echo "==> building Pebble $PEBBLE_VERSION from Go modules (cached in $dir)"
    local started=$SECONDS
    # Built into bin.new and renamed when whole, so bin/ is either complete or absent.
    rm -rf "$dir/bin" "$dir/bin.new"
    mkdir -p "$dir/bin.new"
    : >"$dir/build.log"
    # In a subshell with errexit in force. Not under `if` or `||`: there errexit is off for
    # everything inside, whatever the subshell sets.
    local rc errexit=
    case $- in *e*) errexit=1 ;; esac
    set +e
    (
        set -euo pipefail
        exec >>"$dir/build.log" 2>&1
        export GOFLAGS="-trimpath -buildvcs=false" CGO_ENABLED=0 GOTOOLCHAIN=auto
        _build_pebble "$dir"
    )
    rc=$?
    [ -n "$errexit" ] && set -e
    if [ "$rc" -ne 0 ]; then
        tail -n 40 "$dir/build.log" >&2
        echo "building Pebble failed (log: $dir/build.log); it needs the Go module proxy ($(go env GOPROXY))" >&2
        exec {lock}>&-
        return 1
    fi
    touch "$dir/bin.new/.complete"
    mv "$dir/bin.new" "$dir/bin"
    exec {lock}>&-
    echo "==> Pebble built in $((SECONDS - started)) s"
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
