# Sourced by scripts/test.sh and scripts/run.sh: the Debian packages holdfast needs, installed
# only when missing (so re-runs are fast), as root or through sudo.
# shellcheck shell=bash

PACKAGES=(build-essential cmake ninja-build pkg-config libssl-dev libnghttp2-dev libc-ares-dev
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev zlib1g-dev clang clang-format clang-tidy
  libclang-rt-14-dev curl nginx-light nghttp2-client openssl iproute2 nftables python3 gnutls-bin
  golang-go wrk heaptrack ca-certificates)
as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    echo "need root (or sudo) to run: $*" >&2
    return 1
  fi
}

is_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    is_installed "$p" || missing+=("$p")
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    echo "all ${#PACKAGES[@]} Debian packages present"
    return 0
  fi
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq || return 1
  as_root apt-get install -y -qq "${missing[@]}" </dev/null || return 1
}

