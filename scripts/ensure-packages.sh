#!/usr/bin/env bash
# Installs the Debian packages building and testing Portico needs, when missing:
#   libre2-dev  RE2, the linear-time regex engine behind ingress-nginx's use-regex paths
#   openssl     the TLS session-resumption test drives `openssl s_client`
# Sourced or run by scripts/run.sh and scripts/test.sh; a no-op once they are there.
set -euo pipefail
missing=()
[ -f /usr/include/re2/re2.h ] || missing+=(libre2-dev)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
