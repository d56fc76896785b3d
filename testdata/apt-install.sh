#!/usr/bin/env bash
# Installs Debian packages (as root): apt-get update, then apt-get install -y. Waits for
# another apt that holds a lock instead of failing: `apt-get update` does not wait for the
# lists lock by itself, so it is tried again every 5 s for up to 10 minutes; the install
# waits for the dpkg lock (DPkg::Lock::Timeout).
# Usage: testdata/apt-install.sh PACKAGE...
set -euo pipefail
[ $# -gt 0 ] || exit 0
export DEBIAN_FRONTEND=noninteractive
for try in $(seq 120); do
  if apt-get -o DPkg::Lock::Timeout=600 update -qq; then break; fi
  [ "$try" -lt 120 ] || { echo "apt-get update kept failing" >&2; exit 1; }
  echo "apt-get update failed (another apt holding its lock?); trying again in 5 s" >&2
  sleep 5
done
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >/dev/null
