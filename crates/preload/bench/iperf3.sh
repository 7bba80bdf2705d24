#!/usr/bin/env bash
# iperf3 between the kernel and `iperf3 -s` under libustack_preload.so on a
# TUN, both directions; in the same run, kernel to kernel over a veth pair
# between two namespaces. Root; needs iperf3 and a release build
# (cargo build --release -p ustack-preload). Usage: iperf3.sh [SECONDS]
set -euo pipefail
secs=${1:-5}
lib=$(cd "$(dirname "$0")/../../.." && pwd)/target/release/libustack_preload.so
[ -f "$lib" ] || { echo "build it first: cargo build --release -p ustack-preload" >&2; exit 2; }
tun=ustk-bench-$$ a=ustk-bench-a-$$ b=ustk-bench-b-$$
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for n in "$tun" "$a" "$b"; do ip netns delete "$n" 2>/dev/null || true; done
}
trap cleanup EXIT
gbps() { python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))'; }

ip netns add "$tun"
ip -n "$tun" link set lo up
ip -n "$tun" tuntap add dev ustk0 mode tun
ip -n "$tun" link set ustk0 txqueuelen 4096
ip -n "$tun" addr add 10.233.0.1/24 dev ustk0
ip -n "$tun" link set ustk0 up
ip netns exec "$tun" env LD_PRELOAD="$lib" USTACK_TUN=ustk0 USTACK_ADDR=10.233.0.2/24 \
  USTACK_KERNEL_ADDR=10.233.0.1/24 iperf3 -s -B 10.233.0.2 >/dev/null 2>&1 &
pids+=($!)

ip netns add "$a"; ip netns add "$b"
ip -n "$a" link add veth0 type veth peer name veth1 netns "$b"
ip -n "$a" addr add 10.234.0.1/24 dev veth0; ip -n "$a" link set veth0 up
ip -n "$b" addr add 10.234.0.2/24 dev veth1; ip -n "$b" link set veth1 up
ip netns exec "$b" iperf3 -s -B 10.234.0.2 >/dev/null 2>&1 &
pids+=($!)
sleep 1

for dir in "" "-R"; do
  u=$(ip netns exec "$tun" iperf3 -c 10.233.0.2 -t "$secs" $dir -J | gbps)
  k=$(ip netns exec "$a" iperf3 -c 10.234.0.2 -t "$secs" $dir -J | gbps)
  what=$([ -z "$dir" ] && echo "kernel client sends" || echo "iperf3 -s sends (-R)")
  echo "$what: ustack (preload, TUN) $u Gbps, kernel (veth) $k Gbps"
done
