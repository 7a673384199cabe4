# Builds a real Kubernetes control plane for Slipway's Kubernetes tests, from the Go module
# proxy: kube-apiserver, kube-controller-manager and kube-scheduler from k8s.io/kubernetes,
# etcd from go.etcd.io/etcd/server/v3, and kwok (fake nodes) from sigs.k8s.io/kwok.
#
# Source it and call build_control_plane, or run it as a script. The binaries go to
#   ${SLIPWAY_CACHE_DIR:-$HOME/.cache/slipway}/control-plane/<versions>/bin
# and are reused while the versions below are unchanged; the Go module and build caches
# (go env GOMODCACHE, GOCACHE) make a rebuild after a version change quicker. A cold build
# takes about 9 minutes on 2 cores and 6 GB of disk, most of it Go's caches.
#
# Exports SLIPWAY_CONTROL_PLANE_BIN, which crates/test-support's `cluster` module reads.

KUBERNETES_VERSION=v1.37.2
KUBERNETES_STAGING_VERSION=v0.37.2
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.8.0

control_plane_dir() {
    echo "${SLIPWAY_CACHE_DIR:-$HOME/.cache/slipway}/control-plane/k8s-$KUBERNETES_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION"
}

build_control_plane() {
    if ! command -v go >/dev/null; then
        echo "the Kubernetes tests need Go (1.26 or newer) to build the control plane: install it from https://go.dev/dl/" >&2
        return 1
    fi
    local dir
    dir=$(control_plane_dir)
    export SLIPWAY_CONTROL_PLANE_BIN="$dir/bin"
    if [ -f "$dir/bin/.complete" ]; then
        echo "==> Kubernetes control plane $KUBERNETES_VERSION (cached in $dir)"
        return 0
    fi
    mkdir -p "$dir"
    # One build at a time per cache: a second run (another worktree, another CI job) waits
    # for the first and then finds the binaries, instead of deleting the tree it builds in.
    local lock
    exec {lock}>"$dir.lock"
    if ! flock -n "$lock"; then
        echo "==> waiting for another build of the control plane in $dir"
        flock "$lock"
    fi
    if [ -f "$dir/bin/.complete" ]; then
        exec {lock}>&-
        echo "==> Kubernetes control plane $KUBERNETES_VERSION (cached in $dir)"
        return 0
    fi
    echo "==> building the Kubernetes control plane $KUBERNETES_VERSION, etcd $ETCD_VERSION and kwok $KWOK_VERSION from Go modules (about 9 minutes the first time; cached in $dir)"
    local started=$SECONDS
    # Built into bin.new and renamed when whole, so bin/ is either complete or absent.
    rm -rf "$dir/bin" "$dir/bin.new" "$dir/src"
    mkdir -p "$dir/bin.new" "$dir/src/kubernetes" "$dir/src/etcd" "$dir/src/kwok"
    : >"$dir/build.log"
    # Each step runs in a subshell with errexit in force. Not under `if` or `||`: there
    # errexit is off for everything inside, whatever the subshell sets.
    local step rc errexit=
    case $- in *e*) errexit=1 ;; esac
    for step in kubernetes etcd kwok; do
        echo "    $step: fetching modules and building"
        set +e
        (
            set -euo pipefail
            exec >>"$dir/build.log" 2>&1
            export GOFLAGS="-trimpath -buildvcs=false" CGO_ENABLED=0 GOTOOLCHAIN=auto
            "_build_$step" "$dir"
        )
        rc=$?
        [ -n "$errexit" ] && set -e
        if [ "$rc" -ne 0 ]; then
            tail -n 40 "$dir/build.log" >&2
            echo "building $step failed (log: $dir/build.log); it needs the Go module proxy ($(go env GOPROXY))" >&2
            exec {lock}>&-
            return 1
        fi
    done
    rm -rf "$dir/src"
    touch "$dir/bin.new/.complete"
    mv "$dir/bin.new" "$dir/bin"
    exec {lock}>&-
    echo "==> control plane built in $((SECONDS - started)) s"
}

_build_kubernetes() {
    local dir=$1
    cd "$dir/src/kubernetes"
    # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with
    # directories of its own tree, which a dependent module cannot see: point each one at
    # its published version instead.
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    [ -f "$gomod" ]
    go mod init slipway.test/control-plane
    local go_line
    go_line=$(sed -n 's/^go \(.*\)$/\1/p' "$gomod")
    go mod edit -go="$go_line"
    sed -n 's/^godebug \(.*\)$/godebug \1/p' "$gomod" >>go.mod
    local replaces=()
    local m
    for m in $(sed -n 's|^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/src/.*|\1|p' "$gomod"); do
        replaces+=("-replace=$m=$m@$KUBERNETES_STAGING_VERSION")
    done
    go mod edit "${replaces[@]}"
    go get -tool \
        "k8s.io/kubernetes/cmd/kube-apiserver@$KUBERNETES_VERSION" \
        "k8s.io/kubernetes/cmd/kube-controller-manager@$KUBERNETES_VERSION" \
        "k8s.io/kubernetes/cmd/kube-scheduler@$KUBERNETES_VERSION"
    local minor=${KUBERNETES_VERSION#v1.}
    minor=${minor%%.*}
    local ldflags="-s -w" pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags="$ldflags -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    go build -ldflags "$ldflags" -o "$dir/bin.new/" \
        k8s.io/kubernetes/cmd/kube-apiserver \
        k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kube-scheduler
}

_build_etcd() {
    local dir=$1
    cd "$dir/src/etcd"
    go mod init slipway.test/etcd
    go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    go build -ldflags "-s -w" -o "$dir/bin.new/etcd" go.etcd.io/etcd/server/v3
}

_build_kwok() {
    local dir=$1
    cd "$dir/src/kwok"
    go mod init slipway.test/kwok
    go get -tool "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
    go build -ldflags "-s -w" -o "$dir/bin.new/kwok" sigs.k8s.io/kwok/cmd/kwok
    # kwok's stock stages: nodes become Ready and keep a lease, pods become Ready,
    # Job pods complete, deleted pods go.
    local kwok_src
    kwok_src=$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
    [ -d "$kwok_src/kustomize/stage" ]
    local stages=(
        node/fast/node-initialize.yaml
        node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
        pod/fast/pod-ready.yaml
        pod/fast/pod-complete.yaml
        pod/fast/pod-delete.yaml
    )
    local out="$dir/bin.new/kwok-stages.yaml" s
    : >"$out"
    for s in "${stages[@]}"; do
        printf -- '---\n' >>"$out"
        cat "$kwok_src/kustomize/stage/$s" >>"$out"
    done
    [ "$(grep -c '^kind: Stage' "$out")" -eq "${#stages[@]}" ]
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    build_control_plane
    echo "SLIPWAY_CONTROL_PLANE_BIN=$SLIPWAY_CONTROL_PLANE_BIN"
fi
