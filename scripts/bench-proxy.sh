#!/usr/bin/env bash
# Side-by-side proxy benchmark: Portico (one worker), Portico's native engine spike (one worker,
# `--engine native`, plain HTTP/1.1 scenarios only), nginx (one worker) and HAProxy (nbthread 1),
# each pinned to CPU 0, in front of the same upstream (an nginx answering a 1 KiB body from its
# configuration, on CPU 1).
# Load (wrk, h2load) runs on CPU 1. The three targets alternate over REPEATS rounds; the table
# gives the median requests/s, p50 and p99 per target and scenario, and the ratio to nginx.
#
# The upstream answers with `return`, not from a file: serving a file cost it five system calls per
# request (open, two fstat, pread, close), and that made CPU 1 the limit for every proxy, so the
# req/s columns compared the load side with itself. With the cheap upstream the proxies saturate
# CPU 0 in the keep-alive scenarios. The table also gives how busy CPU 0 was (the proxy under test
# is all that runs there) and req/s per busy CPU-0 second, which still matters where CPU 1 is the
# limit: a new connection per request costs wrk more than it costs the proxies.
#
# Scenarios:
#   keepalive  HTTP/1.1 keep-alive, 50 connections
#   close      a new connection per request (Connection: close), 16 connections
#   https      HTTPS keep-alive, 50 connections
#   handshake  HTTPS with a new connection, so a full TLS handshake, per request; 16 connections
#   h2         HTTP/2 over TLS, h2load -c16 -m16 (h2load reports no percentiles)
# All TLS targets serve the same ECDSA P-256 certificate.
#
# Per target and scenario the table also gives the user and kernel CPU time per request, from
# /proc (the target's processes: nginx's master and worker, HAProxy, Portico's worker), so the gap
# to a per-core limit is visible. After the table, one short run per target and scenario under
# `strace -c -f` gives the system calls per request side by side (strace slows the target; only
# the counts are meant).
# Usage: scripts/bench-proxy.sh [REPEATS=5] [DURATION=10s] [SCENARIOS="keepalive close https handshake h2"]
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-5}
duration=${2:-10s}
scenarios=${3:-keepalive close https handshake h2}

need=()
for tool in nginx haproxy wrk taskset h2load openssl curl strace; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq nginx haproxy wrk util-linux nghttp2-client openssl curl strace >/dev/null
fi
QUIET=1 bash scripts/build-release.sh portico
portico=.build-release/release/portico

work=$(mktemp -d /tmp/portico-bench.XXXXXX)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

upstream=18081; portico_port=18082; nginx_port=18083; haproxy_port=18084; native_port=18085
portico_tls=18092; nginx_tls=18093; haproxy_tls=18094
mkdir -p "$work/manifests" "$work/nginx-up" "$work/nginx-proxy" "$work/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=bench.local" \
  -addext "subjectAltName=DNS:bench.local" -keyout "$work/tls/key.pem" -out "$work/tls/cert.pem" 2>/dev/null
cat "$work/tls/cert.pem" "$work/tls/key.pem" > "$work/tls/combined.pem"
chmod 644 "$work/tls/"*
page=$(head -c 1024 /dev/zero | tr '\0' 'x')

cat > "$work/nginx-up/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $work/nginx-up/pid; error_log /dev/null crit;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$upstream reuseport; location / { default_type text/html; return 200 "$page"; } } }
CONF
cat > "$work/nginx-proxy/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $work/nginx-proxy/pid; error_log /dev/null crit;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream app { server 127.0.0.1:$upstream; keepalive 64; }
  server { listen 127.0.0.1:$nginx_port reuseport;
    listen 127.0.0.1:$nginx_tls ssl http2 reuseport;
    ssl_certificate $work/tls/cert.pem; ssl_certificate_key $work/tls/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache off; ssl_session_tickets off;
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
  bind 127.0.0.1:$haproxy_tls ssl crt $work/tls/combined.pem alpn h2,http/1.1 no-tls-tickets
  default_backend app
backend app
  server up 127.0.0.1:$upstream
CONF
cat > "$work/manifests/app.yaml" <<CONF
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bench, namespace: default, annotations: {portico.io/ssl-redirect: "false"}}
spec:
  ingressClassName: portico
  tls: [{hosts: [bench.local]}]
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
taskset -c 0 nginx -c "$work/nginx-proxy/nginx.conf" & pids+=($!); nginx_pid=$!
taskset -c 0 haproxy -f "$work/haproxy.cfg" -q & pids+=($!); haproxy_pid=$!
taskset -c 1 "$portico" control-plane --manifests "$work/manifests" --listen "unix:$work/run/cp.sock" --admin-port 0 --admin-bind 127.0.0.1 --log-level error & pids+=($!)
sleep 0.5
taskset -c 0 "$portico" worker --control-plane "unix:$work/run/cp.sock" --bind 127.0.0.1 --http-port $portico_port \
  --https-port $portico_tls --default-certificate "$work/tls/cert.pem" --default-key "$work/tls/key.pem" --no-access-log --log-level error & pids+=($!)
portico_pid=$!
# The native engine spike (plain HTTP/1.1 only), a second worker of the same control plane.
taskset -c 0 "$portico" worker --engine native --id native --control-plane "unix:$work/run/cp.sock" --bind 127.0.0.1 \
  --http-port $native_port --no-access-log --log-level error & pids+=($!)
native_pid=$!

# Wait until every target answers through to the upstream (poll, bounded).
for url in http://127.0.0.1:{$nginx_port,$haproxy_port,$portico_port,$native_port}/ https://127.0.0.1:{$nginx_tls,$haproxy_tls,$portico_tls}/; do
  for _ in $(seq 1 200); do
    curl -kfsS -o /dev/null -H 'Host: bench.local' "$url" 2>/dev/null && break
    sleep 0.05
  done
  curl -kfsS -o /dev/null -H 'Host: bench.local' "$url" || { echo "target $url does not answer"; exit 1; }
done

# BENCH_HOLD=1 keeps the targets up for profiling or manual runs instead of measuring.
if [ -n "${BENCH_HOLD:-}" ]; then
  echo "targets up: portico :$portico_port/:$portico_tls, nginx :$nginx_port/:$nginx_tls, haproxy :$haproxy_port/:$haproxy_tls (Host: bench.local); stop with SIGTERM"
  wait
fi

# wrk reports latency in us/ms/s; normalise to milliseconds.
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }


# Drives load at a target for one scenario for $3; sets out (the load tool's output), requests,
# rps, p50 and p99 (milliseconds; h2load reports none).
drive() { # target scenario duration
  local port extra=() connections=50 scheme=http
  case $1 in portico) port=$portico_port ;; portico-native) port=$native_port ;; nginx) port=$nginx_port ;; haproxy) port=$haproxy_port ;; esac
  case $2 in
    close) extra=(-H "Connection: close"); connections=16 ;;
    https) scheme=https ;;
    handshake) scheme=https; extra=(-H "Connection: close"); connections=16 ;;
  esac
  if [ "$scheme" = https ] || [ "$2" = h2 ]; then
    case $1 in portico) port=$portico_tls ;; nginx) port=$nginx_tls ;; haproxy) port=$haproxy_tls ;; esac
  fi
  p50=nan; p99=nan
  if [ "$2" = h2 ]; then
    out=$(taskset -c 1 h2load -D "${3%s}" -c16 -m16 -H ':authority: bench.local' "https://127.0.0.1:$port/" 2>&1)
    rps=$(awk '/^finished in/ {print $4}' <<<"$out")
    requests=$(awk '/^requests:/ {print $8}' <<<"$out")
    local failed; failed=$(awk '/^requests:/ {print $10}' <<<"$out")
    [ "${failed:-0}" != 0 ] && echo "  $1 $2: $failed failed" >&2
  else
    out=$(taskset -c 1 wrk -t1 -c$connections -d"$3" --latency -H 'Host: bench.local' "${extra[@]}" "$scheme://127.0.0.1:$port/")
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    local errors; errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
    [ -n "$errors" ] && echo "  $1 $2: $errors" >&2
  fi
  return 0
}

# A target's processes: the one started and its children (nginx's worker).
target_pids() { local root; case $1 in portico) root=$portico_pid ;; portico-native) root=$native_pid ;; nginx) root=$nginx_pid ;; haproxy) root=$haproxy_pid ;; esac; echo "$root $(pgrep -P "$root" | tr '\n' ' ')"; }
# Their user and system jiffies.
target_ticks() { for pid in $(target_pids "$1"); do awk '{print $14, $15}' "/proc/$pid/stat" 2>/dev/null; done | awk '{u += $1; s += $2} END {print u + 0, s + 0}'; }
clock_ticks=$(getconf CLK_TCK)
# Microseconds of CPU per request between two target_ticks readings: field 1 user, 2 system.
per_request() { awk -v a="$1" -v b="$2" -v n="${3:-0}" -v f="$4" -v hz="$clock_ticks" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.2f", (n > 0 ? (y[f] - x[f]) * 1e6 / hz / n : 0) }'; }

declare -A results
run() { # target scenario
  local out rps requests p50 p99 before after ticks_before ticks_after
  before=$(cpu0_ticks)
  ticks_before=$(target_ticks "$1")
  drive "$1" "$2" "$duration"
  after=$(cpu0_ticks)
  ticks_after=$(target_ticks "$1")
  results["$1,$2,user"]+="$(per_request "$ticks_before" "$ticks_after" "$requests" 1) "
  results["$1,$2,sys"]+="$(per_request "$ticks_before" "$ticks_after" "$requests" 2) "
  local busy; busy=$(awk -v a="$before" -v b="$after" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.1f", 100 * (1 - (y[2] - x[2]) / (y[1] - x[1])) }')
  results["$1,$2,rps"]+="${rps:-0} "; results["$1,$2,p50"]+="$p50 "; results["$1,$2,p99"]+="$p99 "
  results["$1,$2,cpu"]+="$busy "; results["$1,$2,percore"]+="$(awk -v r="${rps:-0}" -v c="$busy" 'BEGIN { printf "%.0f", (c > 0 ? r * 100 / c : 0) }') "
}
# CPU 0's total and idle (idle + iowait) jiffies.
cpu0_ticks() { awk '$1 == "cpu0" { total = 0; for (i = 2; i <= NF; i++) total += $i; print total, $5 + $6 }' /proc/stat; }
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# The targets of a scenario: the native engine serves plain HTTP/1.1 only.
targets_for() { case $1 in keepalive|close) echo portico portico-native nginx haproxy ;; *) echo portico nginx haproxy ;; esac; }

echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); $(nproc) cores; $repeats repeats of $duration; proxies on CPU 0, load and upstream on CPU 1"
for scenario in $scenarios; do
  for round in $(seq 1 "$repeats"); do
    for target in $(targets_for "$scenario"); do
      run "$target" "$scenario"
    done
  done
done

printf '\n%-10s %-14s %12s %10s %10s %14s %7s %14s %14s %9s %9s\n' scenario target "req/s" "p50 ms" "p99 ms" "vs nginx req/s" "CPU 0" "req/s per CPU" "vs nginx /CPU" "user us" "sys us"
for scenario in $scenarios; do
  base=$(median "${results[nginx,$scenario,rps]}")
  base_core=$(median "${results[nginx,$scenario,percore]}")
  for target in $(targets_for "$scenario"); do
    rps=$(median "${results[$target,$scenario,rps]}")
    core=$(median "${results[$target,$scenario,percore]}")
    printf '%-10s %-14s %12.0f %10s %10s %13.2fx %6s%% %14.0f %13.2fx %9s %9s\n' "$scenario" "$target" "$rps" \
      "$(median "${results[$target,$scenario,p50]}")" "$(median "${results[$target,$scenario,p99]}")" "$(awk -v a="$rps" -v b="$base" 'BEGIN {print a / b}')" \
      "$(median "${results[$target,$scenario,cpu]}")" "$core" "$(awk -v a="$core" -v b="$base_core" 'BEGIN {print a / b}')" \
      "$(median "${results[$target,$scenario,user]}")" "$(median "${results[$target,$scenario,sys]}")"
  done
done

# System calls per request: one short run per target and scenario under strace -c -f, attached to
# the target's processes.
echo
echo "system calls per request (strace -c -f, one ${strace_duration:=3s} run each; the most frequent, then the total)"
for scenario in $scenarios; do
  for target in $(targets_for "$scenario"); do
    attach=()
    for pid in $(target_pids "$target"); do attach+=(-p "$pid"); done
    strace -c -f -o "$work/strace" "${attach[@]}" 2>/dev/null &
    tracer=$!
    sleep 0.5
    drive "$target" "$scenario" "$strace_duration" >/dev/null 2>&1 || true
    kill -INT "$tracer" 2>/dev/null || true
    wait "$tracer" 2>/dev/null || true
    if [ "${requests:-0}" -gt 0 ] 2>/dev/null; then
      # strace -c: a header, a dashed line, a row per call (calls in column 4, the name last), a
      # dashed line, the total.
      total=$(awk '/^-+/ { section++; next } section == 2 { print $4 }' "$work/strace")
      top=$(awk '/^-+/ { section++; next } section == 1 && NF >= 5 { print $4, $NF }' "$work/strace" | sort -rn | head -6 |
        awk -v n="$requests" '{ printf "%s%s %.2f", (NR > 1 ? ", " : ""), $2, $1 / n }')
      printf '%-10s %-14s %6.2f in all: %s\n' "$scenario" "$target" "$(awk -v t="${total:-0}" -v n="$requests" 'BEGIN { print t / n }')" "$top"
    else
      printf '%-10s %-14s no requests completed\n' "$scenario" "$target"
    fi
  done
done
