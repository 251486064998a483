#!/usr/bin/env bash
# Side-by-side HTTP/1.1 proxy benchmark: Portico (one worker), nginx (one worker) and HAProxy
# (nbthread 1), each pinned to CPU 0, in front of the same upstream (an nginx serving a 1 KiB body,
# on CPU 1). wrk runs on CPU 1. The three targets alternate over REPEATS rounds; the table gives the
# median requests/s, p50 and p99 per target and scenario, and the ratio to nginx.
#
# Scenarios: keep-alive (50 connections), and a new connection per request (Connection: close).
# Usage: scripts/bench-proxy.sh [REPEATS=3] [DURATION=10s]
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-3}
duration=${2:-10s}

need=()
for tool in nginx haproxy wrk taskset; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq nginx haproxy wrk util-linux >/dev/null
fi
swift build -c release --scratch-path .build-release --product portico >/dev/null
portico=.build-release/release/portico

work=$(mktemp -d /tmp/portico-bench.XXXXXX)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

upstream=18081; portico_port=18082; nginx_port=18083; haproxy_port=18084
mkdir -p "$work/www" "$work/manifests" "$work/nginx-up" "$work/nginx-proxy"
# nginx workers drop root and must be able to read the page.
chmod 755 "$work" "$work/www"
head -c 1024 /dev/zero | tr '\0' 'x' > "$work/www/index.html"

cat > "$work/nginx-up/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $work/nginx-up/pid; error_log /dev/null crit;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$upstream reuseport; root $work/www; location / { } } }
CONF
cat > "$work/nginx-proxy/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $work/nginx-proxy/pid; error_log /dev/null crit;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream app { server 127.0.0.1:$upstream; keepalive 64; }
  server { listen 127.0.0.1:$nginx_port reuseport;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; } } }
CONF
cat > "$work/haproxy.cfg" <<CONF
global
  nbthread 1
  cpu-map 1/1 0
  maxconn 8192
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option forwardfor
  http-reuse always
frontend fe
  bind 127.0.0.1:$haproxy_port
  default_backend app
backend app
  server up 127.0.0.1:$upstream
CONF
cat > "$work/manifests/app.yaml" <<CONF
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bench, namespace: default}
spec:
  ingressClassName: portico
  rules:
  - host: bench.local
    http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: up, port: {number: 80}}}}]
---
apiVersion: v1
kind: Service
metadata: {name: up, namespace: default}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: up-1, namespace: default, labels: {kubernetes.io/service-name: up}}
addressType: IPv4
ports: [{name: http, port: $upstream}]
endpoints: [{addresses: [127.0.0.1], conditions: {ready: true}}]
CONF

taskset -c 1 nginx -c "$work/nginx-up/nginx.conf" & pids+=($!)
taskset -c 0 nginx -c "$work/nginx-proxy/nginx.conf" & pids+=($!)
taskset -c 0 haproxy -f "$work/haproxy.cfg" -q & pids+=($!)
taskset -c 1 "$portico" control-plane --manifests "$work/manifests" --listen "unix:$work/run/cp.sock" --log-level error & pids+=($!)
sleep 0.5
taskset -c 0 "$portico" worker --control-plane "unix:$work/run/cp.sock" --bind 127.0.0.1 --http-port $portico_port --log-level error & pids+=($!)

# Wait until every target answers through to the upstream (poll, bounded).
for port in $nginx_port $haproxy_port $portico_port; do
  for _ in $(seq 1 200); do
    curl -fsS -o /dev/null -H 'Host: bench.local' "http://127.0.0.1:$port/" 2>/dev/null && break
    sleep 0.05
  done
  curl -fsS -o /dev/null -H 'Host: bench.local' "http://127.0.0.1:$port/" || { echo "target on port $port does not answer"; exit 1; }
done

# wrk reports latency in us/ms/s; normalise to milliseconds.
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }

declare -A results
run() { # target port scenario
  local extra=() connections=50
  if [ "$3" = close ]; then extra=(-H "Connection: close"); connections=16; fi
  local out; out=$(taskset -c 1 wrk -t1 -c$connections -d"$duration" --latency -H 'Host: bench.local' "${extra[@]}" "http://127.0.0.1:$2/")
  local rps p50 p99
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
  local errors; errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
  [ -n "$errors" ] && echo "  $1 $3: $errors" >&2
  results["$1,$3,rps"]+="$rps "; results["$1,$3,p50"]+="$p50 "; results["$1,$3,p99"]+="$p99 "
}
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); $(nproc) cores; $repeats repeats of $duration; proxies on CPU 0, wrk and upstream on CPU 1"
for scenario in keepalive close; do
  for round in $(seq 1 "$repeats"); do
    for target in portico nginx haproxy; do
      case $target in portico) port=$portico_port ;; nginx) port=$nginx_port ;; haproxy) port=$haproxy_port ;; esac
      run "$target" "$port" "$scenario"
    done
  done
done

printf '\n%-10s %-10s %12s %10s %10s %14s\n' scenario target "req/s" "p50 ms" "p99 ms" "vs nginx req/s"
for scenario in keepalive close; do
  base=$(median "${results[nginx,$scenario,rps]}")
  for target in portico nginx haproxy; do
    rps=$(median "${results[$target,$scenario,rps]}")
    printf '%-10s %-10s %12.0f %10.3f %10.3f %13.2fx\n' "$scenario" "$target" "$rps" \
      "$(median "${results[$target,$scenario,p50]}")" "$(median "${results[$target,$scenario,p99]}")" "$(awk -v a="$rps" -v b="$base" 'BEGIN {print a / b}')"
  done
done
