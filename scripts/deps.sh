#!/bin/sh
# Installs the Debian packages simile needs, when missing (run as root).
# With --check: installs them too, but says nothing when all are present.
set -e
PKGS="build-essential pkg-config libopenblas-dev zlib1g-dev libjansson-dev libpng-dev libjpeg-dev
      libsqlite3-dev libcairo2-dev libmicrohttpd-dev dataset-fashion-mnist"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "simile: installing Debian packages:$missing"
if [ "$(id -u)" != 0 ]; then
    echo "simile: not root; run: sudo apt-get install -y$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q $missing >/dev/null
