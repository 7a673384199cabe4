# One cached build of test infrastructure from the Go module proxy, shared by
# scripts/control-plane.sh and scripts/pebble.sh. Source it.
#
# go_build_cached LABEL DIR STEP... builds into DIR/bin unless it is already complete:
#   - one build at a time per DIR (a lock file beside it): a second run — another worktree,
#     another CI job — waits for the first and then finds the binaries, instead of deleting
#     the tree it builds in;
#   - each STEP is a shell function, called as `STEP DIR` in a subshell with errexit in force,
#     its output in DIR/build.log; it puts binaries in DIR/bin.new and may use DIR/src/;
#   - DIR/bin.new is renamed to DIR/bin only when every step succeeded, so DIR/bin is either
#     complete or absent. On failure the log's tail and what the build needs are printed.
# GO_BUILD_NOTE, when set, is added to the "building" line (how long a cold build takes).

go_build_cached() {
    local label=$1 dir=$2
    shift 2
    if [ -f "$dir/bin/.complete" ]; then
        echo "==> $label (cached in $dir)"
        return 0
    fi
    mkdir -p "$dir"
    local lock
    exec {lock}>"$dir.lock"
    if ! flock -n "$lock"; then
        echo "==> waiting for another build of $label in $dir"
        flock "$lock"
    fi
    if [ -f "$dir/bin/.complete" ]; then
        exec {lock}>&-
        echo "==> $label (cached in $dir)"
        return 0
    fi
    echo "==> building $label from Go modules (${GO_BUILD_NOTE:+$GO_BUILD_NOTE; }cached in $dir)"
    local started=$SECONDS
    rm -rf "$dir/bin" "$dir/bin.new" "$dir/src"
    mkdir -p "$dir/bin.new" "$dir/src"
    : >"$dir/build.log"
    # Not under `if` or `||`: there errexit is off for everything inside, whatever the
    # subshell sets.
    local step rc errexit=
    case $- in *e*) errexit=1 ;; esac
    for step in "$@"; do
        echo "    ${step#_build_}: fetching modules and building"
        set +e
        (
            set -euo pipefail
            exec >>"$dir/build.log" 2>&1
            export GOFLAGS="-trimpath -buildvcs=false" CGO_ENABLED=0 GOTOOLCHAIN=auto
            "$step" "$dir"
        )
        rc=$?
        [ -n "$errexit" ] && set -e
        if [ "$rc" -ne 0 ]; then
            tail -n 40 "$dir/build.log" >&2
            echo "building ${step#_build_} failed (log: $dir/build.log); it needs the Go module proxy ($(go env GOPROXY))" >&2
            exec {lock}>&-
            return 1
        fi
    done
    rm -rf "$dir/src"
    touch "$dir/bin.new/.complete"
    mv "$dir/bin.new" "$dir/bin"
    exec {lock}>&-
    echo "==> $label built in $((SECONDS - started)) s"
}
