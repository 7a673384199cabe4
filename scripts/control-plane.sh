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

. "$(dirname "${BASH_SOURCE[0]}")/go-build.sh"

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
    GO_BUILD_NOTE="about 9 minutes the first time" go_build_cached \
        "the Kubernetes control plane $KUBERNETES_VERSION, etcd $ETCD_VERSION and kwok $KWOK_VERSION" \
        "$dir" _build_kubernetes _build_etcd _build_kwok
}

_build_kubernetes() {
    local dir=$1
    mkdir -p "$dir/src/kubernetes"
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
    mkdir -p "$dir/src/etcd"
    cd "$dir/src/etcd"
    go mod init slipway.test/etcd
    go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    go build -ldflags "-s -w" -o "$dir/bin.new/etcd" go.etcd.io/etcd/server/v3
}

_build_kwok() {
    local dir=$1
    mkdir -p "$dir/src/kwok"
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
