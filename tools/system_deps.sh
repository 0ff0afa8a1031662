#!/usr/bin/env bash
# The system packages the test suite needs besides what pip installs: Graphviz's `dot`
# (caffeonspark draw, Debian's graphviz), OpenSSL's libcrypto.so.3 (the encrypted ring,
# Debian's libssl3), iproute2's `ip` and `tc` (tests/cluster: the test hosts are network
# namespaces, their links shaped with tc) and UCX's headers and libraries (the UCX
# transport, built when `pkg-config ucx` finds them: Debian's libucx-dev and pkg-config).
# Installs the missing ones with apt-get when run as root, else names them.
set -euo pipefail
missing=()
command -v dot >/dev/null 2>&1 || missing+=(graphviz)
{ ldconfig -p 2>/dev/null || /sbin/ldconfig -p; } | grep -q 'libcrypto\.so\.3' || missing+=(libssl3)
{ command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1; } || missing+=(iproute2)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if ! pkg-config --exists ucx 2>/dev/null; then missing+=(libucx-dev); fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq "${missing[@]}"
else
  echo "tools/system_deps.sh: install these system packages first: ${missing[*]}" >&2
  exit 1
fi
