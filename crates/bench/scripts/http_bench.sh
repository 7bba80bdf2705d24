#!/usr/bin/env bash
# HTTP keep-alive benchmark: `ustack serve http` over a TUN against nginx
# (Debian's) over a veth pair, both driven by wrk from the kernel side, in
# the same run, each in network namespaces of its own (removed at exit).
#
#   sudo crates/bench/scripts/http_bench.sh [SECONDS] [CONNS...]
#
# Needs root, wrk and nginx (apt-get install wrk nginx-light), and a
# release build (cargo build --release -p ustack-cli). Prints requests/s and
# latency percentiles for each server at each connection count.
set -euo pipefail
cd "$(dirname "$0")/../../.."
SECS=${1:-8}
shift || true
CONNS=("${@:-10 1000}")
[ "${#CONNS[@]}" -eq 1 ] && read -r -a CONNS <<<"${CONNS[0]}"
# USTACK=PATH measures another build of the command (an older commit, say).
USTACK=${USTACK:-./target/release/ustack}
# Options after `serve http` (an older build takes no --header-timeout: SERVE_ARGS=).
SERVE_ARGS=${SERVE_ARGS---header-timeout 60}
for t in wrk nginx ip; do
  command -v "$t" >/dev/null || { echo "http_bench: $t is missing (apt-get install wrk nginx-light iproute2)" >&2; exit 2; }
done
[ -x "$USTACK" ] || { echo "http_bench: build first: cargo build --release -p ustack-cli" >&2; exit 2; }

TAG=hb$$
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for ns in "$TAG-ust" "$TAG-srv" "$TAG-cli"; do ip netns delete "$ns" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/www"
head -c 1024 /dev/urandom >"$WORK/www/1k"

# ustack: serve http on a TUN in its own namespace; wrk there talks to it
# through the TUN.
ip netns add "$TAG-ust"
ip netns exec "$TAG-ust" ip link set lo up
ip netns exec "$TAG-ust" env ${TOKIO_WORKER_THREADS:+TOKIO_WORKER_THREADS=$TOKIO_WORKER_THREADS} "$USTACK" --tun ustk0 --addr 10.240.0.2/24 --kernel-addr 10.240.0.1/24 \
  serve http --root "$WORK/www" --port 80 $SERVE_ARGS 2>"$WORK/ustack.err" &
PIDS+=($!)
UST_PID=$!

# nginx: in one namespace, wrk in another, a veth pair between them.
ip netns add "$TAG-srv"
ip netns add "$TAG-cli"
ip link add "$TAG-a" type veth peer name "$TAG-b"
ip link set "$TAG-a" netns "$TAG-cli"
ip link set "$TAG-b" netns "$TAG-srv"
ip netns exec "$TAG-cli" ip addr add 10.241.0.1/24 dev "$TAG-a"
ip netns exec "$TAG-srv" ip addr add 10.241.0.2/24 dev "$TAG-b"
for ns in "$TAG-cli" "$TAG-srv"; do
  ip netns exec "$ns" ip link set lo up
done
ip netns exec "$TAG-cli" ip link set "$TAG-a" up
ip netns exec "$TAG-srv" ip link set "$TAG-b" up
cat >"$WORK/nginx.conf" <<CONF
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  client_body_temp_path $WORK; proxy_temp_path $WORK; fastcgi_temp_path $WORK;
  uwsgi_temp_path $WORK; scgi_temp_path $WORK;
  server { listen 10.241.0.2:80 backlog=4096; root $WORK/www; }
}
CONF
ip netns exec "$TAG-srv" nginx -c "$WORK/nginx.conf" &
PIDS+=($!)

# Both servers answer before the clock starts.
for i in $(seq 100); do
  if ip netns exec "$TAG-ust" curl -sf -o /dev/null http://10.240.0.2/1k 2>/dev/null &&
    ip netns exec "$TAG-cli" curl -sf -o /dev/null http://10.241.0.2/1k 2>/dev/null; then
    break
  fi
  [ "$i" = 100 ] && { echo "http_bench: servers not up" >&2; cat "$WORK/ustack.err" >&2; exit 1; }
  sleep 0.1
done

bench() { # NAME NS URL CONNS
  local out
  out=$(ip netns exec "$2" wrk -t2 -c"$4" -d"${SECS}s" --latency "$3")
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  local errs
  errs=$(grep -E "Socket errors|Non-2xx" <<<"$out" | tr -s ' ' | tr '\n' ';' || true)
  printf '%-14s %6s conns  %10s req/s  p50 %8s  p99 %8s  %s\n' "$1" "$4" "$rps" "$p50" "$p99" "$errs"
}

echo "http_bench: $(date -u +%FT%TZ), wrk -t2 -d${SECS}s keep-alive, 1 KiB file, $(nproc) cores"
for c in "${CONNS[@]}"; do
  bench "ustack (TUN)" "$TAG-ust" http://10.240.0.2/1k "$c"
  bench "nginx (veth)" "$TAG-cli" http://10.241.0.2/1k "$c"
done
echo "ustack threads at the end: $(awk '/^Threads/ {print $2}' /proc/$UST_PID/status)"
