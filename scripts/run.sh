#!/usr/bin/env bash
# The README's main command: installs the Debian packages, builds holdfast (release), starts
# `holdfast serve` on loopback with a generated certificate and fetches from it with `holdfast get`,
# printing the responses and per-phase timings. Extra arguments are passed to the first `get`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/packages.sh
source scripts/packages.sh
install_packages

cmake --preset release -DHOLDFAST_BUILD_TESTS=OFF >/dev/null
cmake --build --preset release --target holdfast_cli -j"${HOLDFAST_JOBS:-2}"
HOLDFAST=$PWD/build/release/holdfast

work=$(mktemp -d)
server_pid=
cleanup() {
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

"$HOLDFAST" serve --port 0 --write-cert "$work/cert.pem" >"$work/serve.out" 2>"$work/serve.err" &
server_pid=$!
for _ in $(seq 100); do
  grep -q '^listening on ' "$work/serve.out" 2>/dev/null && break
  sleep 0.05
done
url=$(sed -n 's/^listening on \(https:[^ ]*\).*/\1/p' "$work/serve.out" | head -n1)
if [[ -z $url ]]; then
  echo "holdfast serve did not start:" >&2
  cat "$work/serve.out" "$work/serve.err" >&2
  exit 1
fi
echo "== holdfast serve is up at $url"
cat "$work/serve.out"

echo
echo "== holdfast get -v --cacert cert.pem $url/"
"$HOLDFAST" get -v --cacert "$work/cert.pem" "$@" "$url/"

echo
echo "== holdfast request -X POST -d 'hello holdfast' $url/echo"
"$HOLDFAST" request -X POST -d 'hello holdfast' --cacert "$work/cert.pem" "$url/echo"

echo
echo "== holdfast get -v -o /dev/null $url/bytes/10000000   (10 MB, streamed)"
"$HOLDFAST" get -v -o /dev/null --cacert "$work/cert.pem" "$url/bytes/10000000"

echo
echo "== without --cacert the self-signed server is refused (exit code 60 expected):"
set +e
"$HOLDFAST" get "$url/"
rc=$?
set -e
echo "exit code: $rc"
[[ $rc -eq 60 ]]
