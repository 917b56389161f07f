#!/usr/bin/env bash
# Install the Debian packages engram needs, only those that are missing.
# Runs as root (or through sudo when it is available); prints nothing when all are present.
set -euo pipefail

packages=(
  build-essential pkg-config
  luajit libluajit-5.1-dev lua-lpeg lua-busted libsqlite3-dev sqlite3
  libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev libopenblas-dev
  valgrind
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: missing packages (${missing[*]}) and not root; install them first" >&2; exit 1; }
  sudo=sudo
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
