#!/usr/bin/env bash
# Side by side, in one run: nginx (Debian, 1 worker), a Node.js https server (when `node` is
# installed) and `holdfast serve`, each pinned to CPU 0, all answering a 13-byte body over TLS 1.3
# with the same generated P-256 certificate, measured the same way:
#   1. idle memory: `holdfast bench --target URL` (pinned to CPU 1) opens N connections, one request
#      each, and holds them; the server's RSS (/proc/PID/status VmRSS) and CPU time are read before
#      and once the server holds all N (`ss`): RSS delta / N, CPU / N (a full handshake + one
#      request), N = the connections the server holds then;
#   2. keep-alive: `wrk -t1 -c64` pinned to CPU 1 (req/s, latency), then the holdfast client on
#      CPU 1 the same way (`holdfast bench --target URL --connections 64 --busy 64`).
# HTTP/2 section (a second table): nginx (`listen ... ssl http2`, 1 worker) and `holdfast serve`,
# each pinned to CPU 0, driven from CPU 1 by
#   3. `h2load -c 10 -m 10 -D <duration>` (10 connections x 10 streams in flight: req/s, mean
#      latency; the server's CPU time per request from /proc/PID/stat), then
#   4. the holdfast client the same way (`holdfast bench --target URL --h2 --busy 10 --streams 10`).
# Writes the tables, with the machine and the command lines, into docs/benchmarks.md between the
# "peers:begin" / "peers:end" and "peers-h2:begin" / "peers-h2:end" markers (PEERS_DOC overrides
# the file; PEERS_DOC=- only prints).
# Needs (Debian): nginx-light (or nginx), wrk, nghttp2-client (h2load), util-linux (taskset),
# iproute2 (ss), openssl, python3; nodejs optional. Installs nothing itself.
# Env: HOLDFAST (CLI path; default: builds build/release), PEERS_CONNECTIONS (10000),
# PEERS_DURATION (10 s), PEERS_PORT (first of five ports, 18443), PEERS_SECTIONS ("h1 h2": the
# tables to measure).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
n=${PEERS_CONNECTIONS:-10000}
duration=${PEERS_DURATION:-10}
port0=${PEERS_PORT:-18443}
doc=${PEERS_DOC:-docs/benchmarks.md}
sections=${PEERS_SECTIONS:-h1 h2}
if [[ -z ${HOLDFAST:-} ]]; then
  cmake --preset release -DHOLDFAST_BUILD_TESTS=OFF >/dev/null
  cmake --build --preset release --target holdfast_cli -j"${HOLDFAST_JOBS:-2}" >/dev/null
  HOLDFAST=$root/build/release/holdfast
fi
for tool in nginx wrk h2load taskset ss openssl python3; do
  command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || {
    echo "bench/peers: $tool is missing (apt-get install nginx-light wrk nghttp2-client" \
      "util-linux iproute2 openssl python3)" >&2
    exit 1
  }
done
PATH=$PATH:/usr/sbin

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -keyout "$work/key.pem" -out "$work/cert.pem" -subj /CN=localhost \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>/dev/null

rss_bytes() { awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
json() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read().splitlines()[-1])[sys.argv[1]])' "$1"; }

wait_port() {
  for _ in $(seq 200); do
    ss -Hltn "sport = :$1" | grep -q LISTEN && return 0
    sleep 0.05
  done
  echo "bench/peers: nothing listens on port $1" >&2
  return 1
}

start_nginx() {  # port [listen flags] -> sets server_pid (the worker)
  mkdir -p "$work/nginx/logs"
  cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile 19000;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 18000; }
http {
  access_log off;
  keepalive_timeout 600s;
  keepalive_requests 100000000;
  server {
    listen 127.0.0.1:$1 ssl ${2:-} backlog=4096;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.3;
    location / { default_type text/plain; return 200 "hello, world\n"; }
  }
}
EOF
  taskset -c 0 nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
  pids+=($!)
  wait_port "$1"
  server_pid=$(pgrep -P "$!" | head -n1)
}

start_node() {
  taskset -c 0 node bench/peers/node_server.js "$1" "$work/cert.pem" "$work/key.pem" >/dev/null &
  pids+=($!)
  server_pid=$!
  wait_port "$1"
}

start_holdfast() {
  taskset -c 0 "$HOLDFAST" serve --port "$1" --cert "$work/cert.pem" --key "$work/key.pem" \
    >/dev/null &
  pids+=($!)
  server_pid=$!
  wait_port "$1"
}

rows=()
commands=()
measure() {  # name version url
  local name=$1 version=$2 url=$3 pid=$server_pid
  "$HOLDFAST" get --cacert "$work/cert.pem" "$url" >/dev/null
  local rss0 cpu0 rss1 cpu1
  rss0=$(rss_bytes "$pid")
  cpu0=$(cpu_ticks "$pid")
  local idle_cmd=(taskset -c 1 "$HOLDFAST" bench --target "$url" --cacert "$work/cert.pem"
    --connections "$n" --busy 1 --duration 1 --hold 300 --json)
  rm -f "$work/idle.json" "$work/idle.err"  # a stale "holding" line would end the wait at once
  "${idle_cmd[@]}" >"$work/idle.json" 2>"$work/idle.err" &
  local client=$!
  local port=${url#https://127.0.0.1:}
  port=${port%%/*}
  # Against a server that answers at once the client's requests finish before its last
  # connections are up: wait until the server holds all N (or stops gaining for 10 s).
  local held=0 last=-1 still=0
  for _ in $(seq 1200); do
    held=$(ss -Htn state established "( sport = :$port )" | wc -l)
    ((held >= n)) && break
    if ((held == last)); then still=$((still + 1)); else still=0; fi
    ((still >= 40)) && grep -qs "holding" "$work/idle.err" && break
    kill -0 "$client" 2>/dev/null || break
    last=$held
    sleep 0.25
  done
  sleep 1
  # `ss` counts connections the kernel completed, not handshakes the server finished: wait
  # until the server's CPU time stops moving (bounded: 60 s).
  local c0 c1
  c0=$(cpu_ticks "$pid")
  for _ in $(seq 120); do
    sleep 0.5
    c1=$(cpu_ticks "$pid")
    ((c1 == c0)) && break
    c0=$c1
  done
  held=$(ss -Htn state established "( sport = :$port )" | wc -l)
  rss1=$(rss_bytes "$pid")
  cpu1=$(cpu_ticks "$pid")
  kill "$client" 2>/dev/null || true
  wait "$client" 2>/dev/null || true
  local wrk_cmd=(taskset -c 1 wrk -t1 -c64 -d"${duration}s" --latency "$url")
  "${wrk_cmd[@]}" >"$work/wrk.txt"
  local wrk_rps wrk_p50 wrk_p99
  wrk_rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$work/wrk.txt")
  wrk_p50=$(awk '$1 == "50%" {print $2}' "$work/wrk.txt")
  wrk_p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")
  local hf_cmd=(taskset -c 1 "$HOLDFAST" bench --target "$url" --cacert "$work/cert.pem"
    --connections 64 --busy 64 --duration "$duration" --json)
  "${hf_cmd[@]}" >"$work/hf.json" 2>/dev/null || true
  local hf_rps
  hf_rps=$(json requests_per_s <"$work/hf.json")
  rows+=("$(printf '| %s | %s | %s | %.0f B | %.0f µs | %s | %s / %s | %.0f |' \
    "$name" "$version" "$held" "$(((rss1 - rss0) / held))" "$(((cpu1 - cpu0) * 10000 / held))" \
    "$wrk_rps" "$wrk_p50" "$wrk_p99" "$hf_rps")")
  commands+=("${name}: ${idle_cmd[*]} / ${wrk_cmd[*]} / ${hf_cmd[*]}")
  echo "${rows[-1]}"
}

stop_server() {
  kill "${pids[-1]}" 2>/dev/null || true
  wait "${pids[-1]}" 2>/dev/null || true
  unset 'pids[-1]'
}

h2_rows=()
h2_commands=()
microseconds() { awk -v ns="$1" 'BEGIN {printf "%.1f", ns / 1000}'; }
measure_h2() {  # name version url (server_pid: the process that serves it)
  local name=$1 version=$2 url=$3 pid=$server_pid
  "$HOLDFAST" get --cacert "$work/cert.pem" "$url" >/dev/null
  local cpu0 cpu1
  local h2load_cmd=(taskset -c 1 h2load -c 10 -m 10 -D "$duration" "$url")
  cpu0=$(cpu_ticks "$pid")
  "${h2load_cmd[@]}" >"$work/h2load.txt" 2>&1 || true
  cpu1=$(cpu_ticks "$pid")
  local h2_rps h2_done h2_failed h2_mean
  h2_rps=$(awk '/^finished in/ {printf "%.0f", $4}' "$work/h2load.txt")
  h2_done=$(awk '/^requests:/ {print $8}' "$work/h2load.txt")
  h2_failed=$(awk '/^requests:/ {print $10 + $12 + $14}' "$work/h2load.txt")
  h2_mean=$(awk '/^time for request:/ {print $6}' "$work/h2load.txt")
  if [[ -z $h2_rps || -z $h2_done ]] || ((h2_done == 0)) ||
    ! grep -q '^Application protocol: h2' "$work/h2load.txt"; then
    echo "bench/peers: h2load against $url failed or did not speak h2:" >&2
    cat "$work/h2load.txt" >&2
    exit 1
  fi
  local h2_cpu_ns=$(((cpu1 - cpu0) * 10000000 / h2_done))  # 1 tick = 10 ms
  local hf_cmd=(taskset -c 1 "$HOLDFAST" bench --target "$url" --cacert "$work/cert.pem"
    --connections 1 --h2 --busy 10 --streams 10 --duration "$duration" --json)
  cpu0=$(cpu_ticks "$pid")
  "${hf_cmd[@]}" >"$work/hf.json" || {
    echo "bench/peers: holdfast bench --h2 against $url failed (output above)" >&2
    exit 1
  }
  cpu1=$(cpu_ticks "$pid")
  local hf_rps hf_p50 hf_p99 hf_done hf_client
  hf_rps=$(json requests_per_s <"$work/hf.json")
  hf_p50=$(json latency_us_p50 <"$work/hf.json")
  hf_p99=$(json latency_us_p99 <"$work/hf.json")
  hf_done=$(json requests <"$work/hf.json")
  hf_client=$(json client_cpu_us_per_request <"$work/hf.json")
  local hf_cpu_ns=$(((cpu1 - cpu0) * 10000000 / hf_done))
  h2_rows+=("$(printf '| %s | %s | %s | %s / %s | %s | %s µs | %.0f | %s / %s µs | %s µs | %s µs |' \
    "$name" "$version" "$h2_rps" "$h2_done" "$h2_failed" "$h2_mean" "$(microseconds "$h2_cpu_ns")" \
    "$hf_rps" "$hf_p50" "$hf_p99" "$(microseconds "$hf_cpu_ns")" "$hf_client")")
  h2_commands+=("${name}: ${h2load_cmd[*]} / ${hf_cmd[*]}")
  echo "${h2_rows[-1]}"
}

machine() {
  echo "Measured by \`bash bench/peers/run.sh\` on $(date -u +'%Y-%m-%d %H:%M UTC'), $(nproc) cores,"
  echo "$(openssl version), kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)."
}

command_lines() {  # line...
  echo
  echo "Command lines (URL, certificate and ports from the script):"
  echo
  echo '```'
  printf '%s\n' "$@" | sed "s#$work#\$WORK#g; s#$HOLDFAST#holdfast#g"
  echo '```'
}

write_doc() {  # marker heading table-file: replaces the text between the markers (or appends)
  if [[ $doc != - ]]; then
    python3 - "$doc" "$3" "$1" "$2" <<'EOF'
import sys
doc, table, marker, heading = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3], sys.argv[4]
text = open(doc).read()
begin, end = "<!-- %s:begin -->\n" % marker, "<!-- %s:end -->" % marker
if begin in text and end in text:
    head, rest = text.split(begin, 1)
    text = head + begin + table + rest[rest.index(end):]
else:
    text += "\n## " + heading + "\n\n" + begin + table + end + "\n"
open(doc, "w").write(text)
EOF
  fi
  cat "$3"
}

if [[ " $sections " == *" h1 "* ]]; then
  start_nginx "$port0"
  measure nginx "$(nginx -v 2>&1 | sed 's/.*version: //')" "https://127.0.0.1:$port0/"
  stop_server
  node_note="Node.js: measured"
  if command -v node >/dev/null; then
    start_node $((port0 + 1))
    measure node "Node $(node --version) https" "https://127.0.0.1:$((port0 + 1))/"
    stop_server
  else
    node_note="Node.js: NOT measured, \`node\` is not installed"
    echo "bench/peers: $node_note" >&2
  fi
  start_holdfast $((port0 + 2))
  measure "holdfast serve" "this tree" "https://127.0.0.1:$((port0 + 2))/bytes/13"
  stop_server
  {
    machine
    echo "N = $n idle connections; servers pinned to CPU 0, clients to CPU 1. $node_note."
    echo
    echo "| server | version | connections held (server side) | server RSS per idle connection | server CPU per handshake (+1 request) | wrk -c64 req/s | wrk p50 / p99 | holdfast client -c64 req/s |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
    command_lines "${commands[@]}"
  } >"$work/table.md"
  write_doc peers "Side by side: nginx, Node.js, holdfast (bench/peers/run.sh)" "$work/table.md"
fi

if [[ " $sections " == *" h2 "* ]]; then
  start_nginx $((port0 + 3)) http2
  measure_h2 nginx "$(nginx -v 2>&1 | sed 's/.*version: //'), http2" \
    "https://127.0.0.1:$((port0 + 3))/"
  stop_server
  start_holdfast $((port0 + 4))
  measure_h2 "holdfast serve" "this tree" "https://127.0.0.1:$((port0 + 4))/bytes/13"
  stop_server
  {
    machine
    echo "HTTP/2 over TLS 1.3, 13-byte responses, $duration s per run; servers pinned to CPU 0,"
    echo "clients to CPU 1; 10 connections x 10 streams in flight (\`h2load -c 10 -m 10\`,"
    echo "\`holdfast bench --h2 --busy 10 --streams 10\`). Server CPU per request: the server"
    echo "process's CPU time (/proc/PID/stat, 10 ms ticks) over the client's run / its requests."
    echo
    echo "| server | version | h2load req/s | h2load requests done / failed | h2load mean latency | server CPU per request (h2load) | holdfast client req/s | holdfast client p50 / p99 | server CPU per request (holdfast client) | holdfast client CPU per request |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${h2_rows[@]}"
    command_lines "${h2_commands[@]}"
  } >"$work/table-h2.md"
  write_doc peers-h2 "HTTP/2 side by side: nginx, holdfast serve (bench/peers/run.sh)" \
    "$work/table-h2.md"
fi
