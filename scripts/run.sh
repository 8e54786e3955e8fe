#!/usr/bin/env bash
# The README's main command: installs the Debian packages, builds holdfast (release) and runs
# `holdfast bench` with its default scenario (10,000 idle TLS 1.3 connections, one request each,
# memory per connection of the server and of the client, then a 10-second keep-alive phase).
# Arguments are passed to `holdfast bench` (e.g. --connections 100000, --json).
# HOLDFAST_BUILD_DIR picks the build directory (default: build/release, the release preset's).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/packages.sh
source scripts/packages.sh
install_packages

build_dir=${HOLDFAST_BUILD_DIR:-build/release}
if [[ $build_dir == build/release ]]; then
  cmake --preset release -DHOLDFAST_BUILD_TESTS=OFF >/dev/null
else
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DHOLDFAST_BUILD_TESTS=OFF >/dev/null
fi
cmake --build "$build_dir" --target holdfast_cli -j"${HOLDFAST_JOBS:-2}"

echo "== holdfast bench $*"
echo "   (server and client in separate processes on loopback; about a minute)"
exec "$build_dir/holdfast" bench "$@"
