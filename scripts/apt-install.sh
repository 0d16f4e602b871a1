#!/usr/bin/env bash
# Installs Debian packages for the test suite without side effects on the machine's services:
#
#   scripts/apt-install.sh PACKAGE…
#
# - waits (up to APT_LOCK_TIMEOUT seconds, default 600) for another apt/dpkg run to release its
#   locks instead of failing at once;
# - starts and enables no system service: a temporary policy-rc.d refuses every start during the
#   install (redis-server and postgresql would otherwise start their own servers), and units the
#   install enabled are disabled again, since scripts/services.sh runs private servers instead.
# Progress goes to stderr. Works as root (CI) or with sudo.
set -euo pipefail
[ "$#" -gt 0 ] || exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || {
    echo "apt-install: not root and no sudo: install $* yourself" >&2
    exit 1
  }
  SUDO="sudo"
fi
TIMEOUT="${APT_LOCK_TIMEOUT:-600}"
APT=(apt-get -o "DPkg::Lock::Timeout=$TIMEOUT" -y -qq --no-install-recommends)

POLICY=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  own_policy=1
fi
cleanup() { if [ "$own_policy" = 1 ]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT

echo "apt-install: installing $* (waiting up to ${TIMEOUT}s for the apt lock if needed)" >&2
$SUDO apt-get -o "DPkg::Lock::Timeout=$TIMEOUT" update -qq >&2
DEBIAN_FRONTEND=noninteractive $SUDO "${APT[@]}" install "$@" >&2

# Units the packages just installed enabled for the next boot: this project never wants them running.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  for unit in "$@"; do
    case "$unit" in redis-server | postgresql) ;; *) continue ;; esac
    if systemctl is-enabled --quiet "$unit" 2>/dev/null; then
      $SUDO systemctl disable --now "$unit" >&2 || true
    fi
  done
fi
