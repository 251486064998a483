#!/usr/bin/env bash
# Regenerates the self-signed demo certificate in examples/quickstart/shop-tls.yaml.
# The key is published in this repository: it is for the local quickstart only.
set -euo pipefail
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
  -subj "/CN=shop.example.com/O=Portico quickstart (self-signed, not for production)" \
  -addext "subjectAltName=DNS:shop.example.com,DNS:www.shop.example.com" \
  -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
{
  echo "# Self-signed demo certificate for shop.example.com, made by scripts/make-example-certificate.sh."
  echo "# Its private key is public: use it for the local quickstart only."
  echo "apiVersion: v1"
  echo "kind: Secret"
  echo "metadata:"
  echo "  name: shop-tls"
  echo "  namespace: shop"
  echo "type: kubernetes.io/tls"
  echo "stringData:"
  echo "  tls.crt: |"
  sed 's/^/    /' "$work/tls.crt"
  echo "  tls.key: |"
  sed 's/^/    /' "$work/tls.key"
} > examples/quickstart/shop-tls.yaml
echo "wrote examples/quickstart/shop-tls.yaml"
