#!/usr/bin/env bash
# `ustack forward` against the kernel forwarding the same traffic, in the
# same run: a client namespace, a router namespace and a server namespace
# (iperf3 and nginx), veth pairs between them. The kernel path: the
# router's ip_forward (client -> 10.250.2.2). The ustack path: the client
# routes 10.250.3.0/24 into ustack's TUN (`--netns` puts its kernel side in
# the client's namespace) and ustack, in the router's namespace, relays
# each connection to 10.250.3.2 (the same server) through kernel sockets.
# Namespaces are removed at exit.
#
#   sudo crates/bench/scripts/forward_bench.sh [SECONDS]
#
# Needs root, iperf3, wrk and nginx, and a release build
# (cargo build --release -p ustack-cli). Prints, for each path: bulk Gbps
# client->server and server->client (iperf3, one connection), new
# connections/s (wrk, "Connection: close", 50 at once, 1 KiB), and a
# download mix (wrk, 100 keep-alive connections, 1 KiB / 64 KiB / 1 MiB).
set -euo pipefail
cd "$(dirname "$0")/../../.."
SECS=${1:-5}
USTACK=${USTACK:-./target/release/ustack}
for t in iperf3 wrk nginx ip; do
  command -v "$t" >/dev/null || { echo "forward_bench: $t is missing (apt-get install iperf3 wrk nginx-light iproute2)" >&2; exit 2; }
done
[ -x "$USTACK" ] || { echo "forward_bench: build first: cargo build --release -p ustack-cli" >&2; exit 2; }

TAG=fb$$
C=$TAG-cli R=$TAG-rtr S=$TAG-srv
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for ns in "$C" "$R" "$S"; do ip netns delete "$ns" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

for ns in "$C" "$R" "$S"; do
  ip netns add "$ns"
  ip -n "$ns" link set lo up
done
ip link add "$TAG-c0" type veth peer name "$TAG-r0"
ip link add "$TAG-r1" type veth peer name "$TAG-s0"
ip link set "$TAG-c0" netns "$C"
ip link set "$TAG-r0" netns "$R"
ip link set "$TAG-r1" netns "$R"
ip link set "$TAG-s0" netns "$S"
ip -n "$C" addr add 10.250.1.1/24 dev "$TAG-c0"
ip -n "$R" addr add 10.250.1.2/24 dev "$TAG-r0"
ip -n "$R" addr add 10.250.2.1/24 dev "$TAG-r1"
ip -n "$S" addr add 10.250.2.2/24 dev "$TAG-s0"
ip -n "$S" addr add 10.250.3.2/32 dev lo
for x in "$C:$TAG-c0" "$R:$TAG-r0" "$R:$TAG-r1" "$S:$TAG-s0"; do
  ip -n "${x%%:*}" link set "${x#*:}" up
done
ip netns exec "$R" sysctl -qw net.ipv4.ip_forward=1
ip -n "$C" route add 10.250.2.0/24 via 10.250.1.2
ip -n "$R" route add 10.250.3.0/24 via 10.250.2.2
ip -n "$S" route add default via 10.250.2.1

mkdir -p "$WORK/www"
head -c 1024 /dev/urandom >"$WORK/www/1k"
head -c 65536 /dev/urandom >"$WORK/www/64k"
head -c 1048576 /dev/urandom >"$WORK/www/1m"
cat >"$WORK/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $WORK; proxy_temp_path $WORK; fastcgi_temp_path $WORK;
  uwsgi_temp_path $WORK; scgi_temp_path $WORK;
  server { listen 80 backlog=4096; root $WORK/www; }
}
CONF
ip netns exec "$S" nginx -c "$WORK/nginx.conf" &
PIDS+=($!)
ip netns exec "$S" iperf3 -s >/dev/null 2>&1 &
PIDS+=($!)
cat >"$WORK/mix.lua" <<'LUA'
local paths = {"/1k", "/64k", "/1m"}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % 3) + 1])
end
LUA

ip netns exec "$R" "$USTACK" --tun ustf0 --addr 10.250.9.2/24 --kernel-addr 10.250.9.1/24 \
  --netns "$C" forward --route 10.250.3.0/24 2>"$WORK/ustack.err" &
PIDS+=($!)
UST_PID=$!

for i in $(seq 100); do
  if ip netns exec "$C" curl -sf -o /dev/null http://10.250.2.2/1k 2>/dev/null &&
    ip netns exec "$C" curl -sf -o /dev/null http://10.250.3.2/1k 2>/dev/null; then
    break
  fi
  [ "$i" = 100 ] && { echo "forward_bench: paths not up" >&2; cat "$WORK/ustack.err" >&2; exit 1; }
  sleep 0.1
done

gbps() { # NS ADDR [-R]
  ip netns exec "$1" iperf3 -c "$2" -t "$SECS" -f g ${3:-} | awk '/receiver/ {print $(NF-2)}'
}
wrk_out() { # NS ARGS...
  local ns=$1
  shift
  ip netns exec "$ns" wrk -t2 -d"${SECS}s" "$@"
}

echo "forward_bench: $(date -u +%FT%TZ), ${SECS}s per figure, $(nproc) cores, ustack $(git rev-parse --short HEAD 2>/dev/null || echo ?)"
printf '%-22s %10s %10s %12s %12s %14s\n' path "up Gbps" "down Gbps" "conn/s" "mix req/s" "mix MB/s"
for path in "kernel ip_forward:10.250.2.2" "ustack forward:10.250.3.2"; do
  name=${path%%:*} addr=${path#*:}
  up=$(gbps "$C" "$addr")
  down=$(gbps "$C" "$addr" -R)
  cps=$(wrk_out "$C" -c50 -H "Connection: close" "http://$addr/1k" | awk '/Requests\/sec/ {print $2}')
  mix=$(wrk_out "$C" -c100 -s "$WORK/mix.lua" "http://$addr/")
  mrps=$(awk '/Requests\/sec/ {print $2}' <<<"$mix")
  mbs=$(awk '/Transfer\/sec/ {print $2}' <<<"$mix")
  errs=$(grep -E "Socket errors|Non-2xx" <<<"$mix" | tr -s ' ' | tr '\n' ';' || true)
  printf '%-22s %10s %10s %12s %12s %14s %s\n' "$name" "$up" "$down" "$cps" "$mrps" "$mbs" "$errs"
done
echo "ustack threads at the end: $(awk '/^Threads/ {print $2}' /proc/$UST_PID/status)"
