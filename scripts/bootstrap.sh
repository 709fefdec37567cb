#!/usr/bin/env bash
# Idempotent set-up for `make run` and `make test` on Debian 12 (as root):
#   1. installs the Debian packages that are missing (and only then runs apt-get update);
#   2. creates ./.venv if it is missing;
#   3. runs `pip install -e '.[test]'` when setup.cfg / pyproject.toml changed since
#      the last successful install (sha256 stamp in .venv).
# Prints what it does; prints one "up to date" line when there is nothing to do.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=$ROOT/.venv
STAMP=$VENV/.shareflow-install.sha256

say() { echo "bootstrap: $*"; }
die() { echo "bootstrap: error: $*" >&2; exit 1; }

# One bootstrap at a time (make run and make test may be started together).
if command -v flock >/dev/null 2>&1; then
    exec 9<"$ROOT/scripts/bootstrap.sh"
    flock 9
fi

changed=0

# --- 1. Debian packages -------------------------------------------------------
# zookeeper: the jobboard's server; nfs-ganesha(-vfs): the NFS server; libnfs-utils:
# the userspace NFS client used by tests; btrfs-progs: storage pools; xfsprogs: the
# image share driver's pools and share images (mkfs.xfs, xfs_growfs, xfs_freeze); iproute2:
# network namespaces; util-linux: mount/losetup/runuser/setpriv; postgresql: the
# tests' private PostgreSQL cluster; dbus: the private dbus-daemon each NFS-Ganesha
# gets, through which exports are changed one at a time.
PACKAGES=(zookeeper nfs-ganesha nfs-ganesha-vfs libnfs-utils btrfs-progs xfsprogs iproute2 util-linux postgresql dbus)

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done
venv_ok() { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c '' >/dev/null 2>&1; }
if ! venv_ok; then
    if ! command -v python3 >/dev/null 2>&1; then
        missing+=(python3 python3-venv)
    elif ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        # Debian splits ensurepip (needed by `python3 -m venv`) into python3-venv.
        missing+=(python3-venv)
    fi
fi
if ! command -v java >/dev/null 2>&1; then
    missing+=(default-jre-headless)
fi

if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing Debian packages (${missing[*]}); run as root to install them"
    command -v apt-get >/dev/null 2>&1 || die "missing packages (${missing[*]}) and no apt-get: this needs Debian 12"
    changed=1
    export DEBIAN_FRONTEND=noninteractive
    # Do not let package scripts start system services while installing: the system
    # NFS-Ganesha would take port 2049 from `make run` (PostgreSQL's system cluster is
    # harmless but unused). Only if no policy is in place already; removed on exit.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# temporary, from shareflow scripts/bootstrap.sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    say "installing Debian packages: ${missing[*]}"
    apt-get -q -o DPkg::Lock::Timeout=300 update
    apt-get -q -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "${missing[@]}"
    if [ -e "$policy" ] && grep -q 'shareflow scripts/bootstrap.sh' "$policy"; then
        rm -f "$policy"
        trap - EXIT
    fi
    # On a systemd host the package enables the system NFS-Ganesha for the next boot;
    # shareflow runs its own instances on port 2049, so keep the system one off.
    if [[ " ${missing[*]} " == *" nfs-ganesha "* ]] && [ -d /run/systemd/system ]; then
        say "disabling the system nfs-ganesha service (shareflow runs its own NFS-Ganesha)"
        systemctl disable nfs-ganesha.service nfs-ganesha-lock.service >/dev/null 2>&1 || true
    fi
fi

# --- 2. virtualenv --------------------------------------------------------------
if ! venv_ok; then
    changed=1
    python=$(command -v python3) || die "python3 not found"
    if [ -e "$VENV" ]; then
        say "recreating broken virtualenv $VENV with $python"
        "$python" -m venv --clear "$VENV"
    else
        say "creating virtualenv $VENV with $python"
        "$python" -m venv "$VENV"
    fi
fi

# --- 3. the project, editable, with test extras -----------------------------------
want=$(
    for f in setup.cfg pyproject.toml setup.py; do
        if [ -e "$f" ]; then sha256sum "$f"; fi
    done | sha256sum | cut -d' ' -f1
)
have=$(cat "$STAMP" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
    changed=1
    say "installing shareflow and its test dependencies into $VENV (pip install -e '.[test]')"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-input --progress-bar off \
        -e "$ROOT[test]"
    echo "$want" >"$STAMP"
fi

if [ "$changed" -eq 0 ]; then
    say "up to date"
fi
