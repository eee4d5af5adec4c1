#!/usr/bin/env bash
# Build a real local Kubernetes control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl) from the Go module k8s.io/kubernetes, plus etcd and kwok, for the
# pinned versions below. See hack/k8s/README.md.
#
# Usage: hack/k8s/build.sh [K8S_VERSION ...]  (default: $PITSTOP_K8S_VERSIONS, else K8S_VERSIONS_DEFAULT)
#
# Output (outside the repo, keyed by version):
#   ${PITSTOP_CACHE:-/var/cache/pitstop}/k8s/v<version>/bin/{kube-apiserver,kube-controller-manager,
#                                                          kube-scheduler,kubectl,etcd,kwok}
#   ${PITSTOP_CACHE:-/var/cache/pitstop}/k8s/v<version>/.stamp   (written only after success)
# A version whose stamp matches is skipped, so running this again is cheap.
set -Eeuo pipefail

K8S_VERSIONS_DEFAULT="1.35.4 1.36.3"
# etcd: kubeadm v1.36 pins 3.6.8 for both 1.35 and 1.36 (SupportedEtcdVersion); it is also
# k8s v1.36.3's go.etcd.io/etcd/client/v3 version.
ETCD_VERSION="${PITSTOP_ETCD_VERSION:-3.6.8}"
# kwok v0.8.0: go.mod says go 1.26.0, fits the installed go1.26.x without a toolchain switch.
KWOK_VERSION="${PITSTOP_KWOK_VERSION:-0.8.0}"

CACHE_ROOT="${PITSTOP_CACHE:-/var/cache/pitstop}/k8s"
JOBS="${PITSTOP_BUILD_JOBS:-2}"          # go build -p; the machine has 2 cores

if [ "$#" -gt 0 ]; then
  K8S_VERSIONS="$*"
else
  K8S_VERSIONS="${PITSTOP_K8S_VERSIONS:-$K8S_VERSIONS_DEFAULT}"
fi

# Go environment: resolve modules through the default proxy, never touch a repo's go.mod.
export GOFLAGS="-mod=mod -buildvcs=false"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"   # go1.26 suffices for every pinned module
export GOMAXPROCS="${GOMAXPROCS:-2}"
export CGO_ENABLED=0                         # upstream builds these binaries static
export GOWORK=off

log() { printf '[k8s-build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
trap 'log "ERROR: command failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR

command -v go >/dev/null || die "go is not installed"
log "go: $(go version); GOTOOLCHAIN=$GOTOOLCHAIN; jobs=$JOBS; cache=$CACHE_ROOT"

NICE=(nice -n 10)
TOTAL_START=$(date +%s)

# go mod download -json MODULE@VERSION and print one field of the answer.
mod_field() {
  go mod download -json "$1" | python3 -c 'import json,sys; d=json.load(sys.stdin); e=d.get("Error"); sys.exit("go mod download: "+e) if e else print(d[sys.argv[1]])' "$2"
}

# ---------------------------------------------------------------- etcd (tiny main over etcdmain)
build_etcd() {
  local dir="$CACHE_ROOT/tools/etcd-v$ETCD_VERSION"
  local stamp="$dir/.stamp"
  if [ -f "$stamp" ] && [ -x "$dir/bin/etcd" ]; then
    log "etcd v$ETCD_VERSION: cached"; return
  fi
  local t0; t0=$(date +%s)
  log "etcd v$ETCD_VERSION: building"
  rm -rf "$dir/mod" "$stamp"; mkdir -p "$dir/mod" "$dir/bin"
  cat >"$dir/mod/go.mod" <<EOF
module pitstop.local/etcd-build

go 1.24.0

require go.etcd.io/etcd/server/v3 v$ETCD_VERSION
EOF
  cat >"$dir/mod/main.go" <<'EOF'
// Command etcd is upstream's etcd main: go.etcd.io/etcd/v3's main.go calls etcdmain.Main.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  (cd "$dir/mod" &&
    "${NICE[@]}" go build -p "$JOBS" -trimpath \
      -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=v$ETCD_VERSION" \
      -o "$dir/bin/etcd" .)
  # read the whole output first: `cmd | grep -q` under pipefail fails when grep exits early and
  # the command dies of SIGPIPE writing its next line
  local said; said=$("$dir/bin/etcd" --version)
  [[ $said == *"etcd Version: $ETCD_VERSION"* ]] || die "etcd --version mismatch: $said"
  echo "etcd v$ETCD_VERSION" >"$stamp"
  log "etcd v$ETCD_VERSION: built in $(( $(date +%s) - t0 ))s"
}

# ---------------------------------------------------------------- kwok
build_kwok() {
  local dir="$CACHE_ROOT/tools/kwok-v$KWOK_VERSION"
  local stamp="$dir/.stamp"
  if [ -f "$stamp" ] && [ -x "$dir/bin/kwok" ] && [ -s "$dir/stages.yaml" ]; then
    log "kwok v$KWOK_VERSION: cached"; return
  fi
  local t0; t0=$(date +%s)
  log "kwok v$KWOK_VERSION: building"
  rm -rf "$dir/mod" "$stamp"; mkdir -p "$dir/mod" "$dir/bin"
  cat >"$dir/mod/go.mod" <<EOF
module pitstop.local/kwok-build

go 1.26.0

require sigs.k8s.io/kwok v$KWOK_VERSION
EOF
  (cd "$dir/mod" &&
    "${NICE[@]}" go build -p "$JOBS" -trimpath \
      -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v$KWOK_VERSION" \
      -o "$dir/bin/kwok" sigs.k8s.io/kwok/cmd/kwok)
  local said; said=$("$dir/bin/kwok" --version 2>&1)
  [[ $said == *"v$KWOK_VERSION"* ]] || die "kwok --version mismatch: $said"
  # The kwok binary has no built-in stages; kwokctl's defaults for its "binary" runtime are
  # node-initialize + node-heartbeat-with-lease + pod ready/complete/delete (see kwok's
  # pkg/kwokctl/runtime/cluster.go getDefaultNodeStages/getDefaultPodStages). Ship exactly those.
  local src f
  src=$(mod_field "sigs.k8s.io/kwok@v$KWOK_VERSION" Dir)
  : >"$dir/stages.yaml.tmp"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    [ -f "$src/kustomize/stage/$f" ] || die "kwok stage $f not found in $src"
    { echo "---"; cat "$src/kustomize/stage/$f"; echo; } >>"$dir/stages.yaml.tmp"
  done
  mv -f "$dir/stages.yaml.tmp" "$dir/stages.yaml"
  echo "kwok v$KWOK_VERSION" >"$stamp"
  log "kwok v$KWOK_VERSION: built in $(( $(date +%s) - t0 ))s"
}

# ---------------------------------------------------------------- kubernetes
K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)

build_k8s() {
  local ver="${1#v}"
  [[ "$ver" =~ ^1\.([0-9]+)\.([0-9]+)$ ]] || die "bad version '$1' (want 1.MINOR.PATCH)"
  local minor="${BASH_REMATCH[1]}" patch="${BASH_REMATCH[2]}"
  local dir="$CACHE_ROOT/v$ver"
  local stamp="$dir/.stamp"
  local want="kubernetes v$ver etcd v$ETCD_VERSION kwok v$KWOK_VERSION"

  local b
  if k8s_compiled "$dir" "$ver"; then
    log "kubernetes v$ver: compiled binaries cached ($dir/bin)"
  else
    compile_k8s "$ver" "$minor" "$patch" "$dir"
  fi

  # Bundle the pinned etcd and kwok (and kwok's stage configs) next to them.
  install -m 0755 "$CACHE_ROOT/tools/etcd-v$ETCD_VERSION/bin/etcd" "$dir/bin/etcd"
  install -m 0755 "$CACHE_ROOT/tools/kwok-v$KWOK_VERSION/bin/kwok" "$dir/bin/kwok"
  install -m 0644 "$CACHE_ROOT/tools/kwok-v$KWOK_VERSION/stages.yaml" "$dir/kwok-stages.yaml"
  for b in "${K8S_BINS[@]}" etcd kwok; do [ -x "$dir/bin/$b" ] || die "missing $dir/bin/$b"; done
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "$want" >"$stamp"
  fi
  log "kubernetes v$ver: ready in $dir/bin ($(du -sh "$dir/bin" | cut -f1))"
}

# True when the four Kubernetes binaries of this version were compiled and verified earlier.
k8s_compiled() {
  local dir="$1" ver="$2" b
  [ -f "$dir/.stamp-kubernetes" ] || [ -f "$dir/.stamp" ] || return 1
  for b in "${K8S_BINS[@]}"; do [ -x "$dir/bin/$b" ] || return 1; done
  [ "$("$dir/bin/kube-apiserver" --version 2>/dev/null)" = "Kubernetes v$ver" ]
}

compile_k8s() {
  local ver="$1" minor="$2" patch="$3" dir="$4" b
  local staging_ver="v0.$minor.$patch"
  local t0; t0=$(date +%s)
  log "kubernetes v$ver: building (staging modules at $staging_ver)"
  rm -f "$dir/.stamp" "$dir/.stamp-kubernetes"; rm -rf "$dir/mod"; mkdir -p "$dir/mod" "$dir/bin"

  # Derive the staging modules from k8s.io/kubernetes's own go.mod: its replace block maps each
  # k8s.io/<name> => ./staging/src/k8s.io/<name>; we map each to its published v0.MINOR.PATCH.
  local upstream_mod upstream_info gover
  upstream_mod=$(mod_field "k8s.io/kubernetes@v$ver" GoMod)
  upstream_info=$(mod_field "k8s.io/kubernetes@v$ver" Info)
  gover=$(awk '$1=="go"{print $2; exit}' "$upstream_mod")
  local staging
  staging=$(sed -nE 's#^[[:space:]]*(k8s\.io/[A-Za-z0-9._-]+)[[:space:]]+=>[[:space:]]+\./staging/src/.*#\1#p' "$upstream_mod" | sort -u)
  [ -n "$staging" ] || die "no staging replace directives found in $upstream_mod"
  log "kubernetes v$ver: go $gover; $(echo "$staging" | wc -l) staging modules"

  {
    echo "// Generated by pitstop hack/k8s/build.sh; do not edit."
    echo "module pitstop.local/k8s-build"
    echo
    echo "go $gover"
    echo
    echo "require k8s.io/kubernetes v$ver"
    echo
    echo "replace ("
    local m
    for m in $staging; do echo "	$m => $m $staging_ver"; done
    echo ")"
  } >"$dir/mod/go.mod"

  # Version stamping exactly as upstream's hack/lib/version.sh does (both packages).
  local build_date
  build_date=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Time"])' "$upstream_info")
  local ld="-s -w" pkg
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ld+=" -X '$pkg.gitVersion=v$ver' -X '$pkg.gitMajor=1' -X '$pkg.gitMinor=$minor'"
    ld+=" -X '$pkg.gitTreeState=clean' -X '$pkg.buildDate=$build_date'"
  done

  local pkgs=()
  for b in "${K8S_BINS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  # One go build for all four shares the compile of the common packages.
  (cd "$dir/mod" &&
    "${NICE[@]}" go build -p "$JOBS" -trimpath -tags "selinux,notest,grpcnotrace" \
      -ldflags "all=$ld" -o "$dir/bin/" "${pkgs[@]}")

  local got
  got=$("$dir/bin/kube-apiserver" --version)
  [ "$got" = "Kubernetes v$ver" ] || die "kube-apiserver --version says '$got', want 'Kubernetes v$ver'"
  got=$("$dir/bin/kubectl" version --client 2>/dev/null) || true  # no pipe: avoid SIGPIPE
  [[ "$got" == *"Client Version: v$ver"* ]] || die "kubectl version --client says '$got'"

  echo "kubernetes v$ver" >"$dir/.stamp-kubernetes"
  log "kubernetes v$ver: compiled in $(( $(date +%s) - t0 ))s"
}

mkdir -p "$CACHE_ROOT"
build_etcd
build_kwok
for v in $K8S_VERSIONS; do build_k8s "$v"; done
log "all done in $(( $(date +%s) - TOTAL_START ))s; cache $(du -sh "$CACHE_ROOT" | cut -f1)"
