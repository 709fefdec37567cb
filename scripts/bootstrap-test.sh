#!/usr/bin/env bash
# Idempotent set-up of what only `make test` needs, after scripts/bootstrap.sh:
#   1. Go and Debian's gophercloud (golang-go, golang-github-gophercloud-gophercloud-dev):
#      the library of Kubernetes' manila-csi and Terraform's OpenStack provider, whose
#      test program (tests/clients/gophercloud) is built offline against it;
#   2. a real OpenStack Keystone in ./.venv-keystone (tests/keystone-requirements.txt),
#      for the tests of `[auth] strategy = "keystone"`; reinstalled when that file changes.
# Prints what it does; prints one "up to date" line when there is nothing to do.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
KEYSTONE_VENV=$ROOT/.venv-keystone
REQUIREMENTS=$ROOT/tests/keystone-requirements.txt
STAMP=$KEYSTONE_VENV/.requirements.sha256

say() { echo "bootstrap-test: $*"; }

# One at a time, like scripts/bootstrap.sh.
exec 9<"$ROOT/scripts/bootstrap-test.sh"
flock 9

changed=0
PACKAGES=(golang-go golang-github-gophercloud-gophercloud-dev)
missing=()
for pkg in "${PACKAGES[@]}"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" = installed ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || { echo "bootstrap-test: missing Debian packages (${missing[*]}); run as root" >&2; exit 1; }
    changed=1
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -q -o DPkg::Lock::Timeout=300 update
    apt-get -q -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "${missing[@]}"
fi

want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
have=$(cat "$STAMP" 2>/dev/null || true)
if [ "$want" != "$have" ] || ! "$KEYSTONE_VENV/bin/python" -c '' >/dev/null 2>&1; then
    changed=1
    say "installing Keystone for the tests into $KEYSTONE_VENV (a few minutes, once)"
    python3 -m venv --clear "$KEYSTONE_VENV"
    "$KEYSTONE_VENV/bin/python" -m pip install -q --disable-pip-version-check --no-input \
        --progress-bar off -r "$REQUIREMENTS"
    echo "$want" >"$STAMP"
fi

if [ "$changed" -eq 0 ]; then
    say "up to date"
fi
