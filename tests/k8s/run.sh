#!/usr/bin/env bash
# Validation of the Kubernetes deployment: k8s/ (kustomize overlays,
# Dockerfiles, nginx) and sql/. Runs from a clean clone on Debian 12 as
# root: installs what it needs (Debian packages only if missing, npm
# packages from package-lock.json into tests/k8s/node_modules), then runs
# every check, one line each, ending with "N passed, N failed".
#
#   bash tests/k8s/run.sh            # everything
#   bash tests/k8s/run.sh --only netpol
#
# shared/ (CloudNativePG CRD schemas, DESIGN.md) is looked up beside the
# clone, then at /work/shared; KOTTE_SHARED_DIR overrides.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '%s\n' "$*" >&2; }

apt_updated=0
apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        log "run.sh: missing Debian packages: $* (run as root, or install them)"
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if [ "$apt_updated" -eq 0 ]; then apt-get update -qq; apt_updated=1; fi
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v git >/dev/null 2>&1 || missing+=(git)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
if [ "${#missing[@]}" -gt 0 ]; then
    log "run.sh: installing ${missing[*]}"
    apt_install "${missing[@]}"
fi

# nginx for the nginx.conf check: Debian's package unpacked under .deps, not
# installed, so no service is set up or started.
if ! command -v nginx >/dev/null 2>&1 && [ ! -x "$here/.deps/nginx/usr/sbin/nginx" ]; then
    log "run.sh: unpacking Debian's nginx into tests/k8s/.deps"
    dl="$here/.deps/download"
    rm -rf "$dl" && mkdir -p "$dl"
    if ! (cd "$dl" && apt-get download nginx nginx-common >/dev/null 2>&1); then
        [ "$apt_updated" -eq 1 ] || { apt-get update -qq; apt_updated=1; }
        (cd "$dl" && apt-get download nginx nginx-common >/dev/null 2>&1)
    fi
    for deb in "$dl"/*.deb; do dpkg-deb -x "$deb" "$here/.deps/nginx"; done
    rm -rf "$dl"
fi
if [ -x "$here/.deps/nginx/usr/sbin/nginx" ] &&
    ldd "$here/.deps/nginx/usr/sbin/nginx" 2>/dev/null | grep -q 'not found'; then
    apt_install libpcre2-8-0 libssl3 zlib1g libcrypt1
fi

# npm packages, pinned by package-lock.json; reinstalled when the lock changes.
stamp="$here/node_modules/.kotte-lock-stamp"
if [ ! -f "$stamp" ] || ! cmp -s "$here/package-lock.json" "$stamp"; then
    log "run.sh: npm ci"
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    cp "$here/package-lock.json" "$stamp"
fi

exec node "$here/run.mjs" "$@"
