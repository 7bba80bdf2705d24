#!/bin/bash
# 8 parallel curl downloads of a 256 MiB file from `ustack --queues Q serve http`
# over a multiqueue TUN whose kernel side is in a namespace of its own
# (issue 19, item 6). Root; run from the workspace root after
# `cargo build --release -p ustack-cli`. Prints Gbit/s per round, the
# bytes curl got (8 x 268435456 when all is well) and the load average.
set -u
BIN=${USTACK:-target/release/ustack}
NS=mqbench-$$
DIR=$(mktemp -d)
trap 'kill $SRV 2>/dev/null; wait $SRV 2>/dev/null; ip netns del $NS 2>/dev/null; rm -rf $DIR' EXIT
head -c $((256<<20)) /dev/urandom > $DIR/big
ip netns add $NS
for round in 1 2 3; do
for Q in 1 2; do
  $BIN --tun mqb0 --netns $NS --addr 10.233.0.2/24 --kernel-addr 10.233.0.1/24 --queues $Q \
      serve http --root $DIR --port 80 2>$DIR/err.$Q &
  SRV=$!
  for i in $(seq 50); do grep -q "serving" $DIR/err.$Q 2>/dev/null && break; sleep 0.1; done
  sleep 0.3
  start=$(date +%s.%N)
  for i in $(seq 8); do ip netns exec $NS curl -s --max-time 120 -o /dev/null -w "%{size_download}\n" http://10.233.0.2/big >> $DIR/sizes.$Q.$round & done
  wait $(jobs -p | grep -v "^$SRV$") 2>/dev/null
  end=$(date +%s.%N)
  kill $SRV; wait $SRV 2>/dev/null
  echo "8*256*8/1024/($end-$start)" | bc -l >> $DIR/gbps.$Q
  echo "round $round queues $Q: got $(awk "{s+=\$1} END {print s}" $DIR/sizes.$Q.$round) bytes, $(echo "8*256*8/1024/($end-$start)" | bc -l | cut -c1-5) Gbit/s ($(cut -d' ' -f1 /proc/loadavg) load)"
  sleep 0.5
done
done
med() { sort -g "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m1=$(med $DIR/gbps.1); m2=$(med $DIR/gbps.2)
printf "median: 1 queue %.2f Gbit/s, 2 queues %.2f Gbit/s, ratio %.2f\n" "$m1" "$m2" "$(echo "$m2/$m1" | bc -l)"
