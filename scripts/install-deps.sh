#!/usr/bin/env bash
# Installs the Debian packages stablefs builds and tests with. A no-op when all are present.
set -euo pipefail
packages=(build-essential cmake pkg-config libfuse3-dev fuse3 liburing-dev libxxhash-dev libcli11-dev doctest-dev
          util-linux libmount-dev fio acl attr xfsprogs clang libclang-rt-14-dev nlohmann-json3-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
