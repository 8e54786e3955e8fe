#!/bin/sh
# Builds or removes the three-namespace fault path (client - middlebox - server) by hand.
# Usage: netns.sh up PREFIX [CONNTRACK_TIMEOUT_S] | netns.sh down PREFIX
# Addresses: client 10.200.1.2, middlebox 10.200.1.1/10.200.2.1, server 10.200.2.2. The middlebox
# forwards only tracked flows; an idle flow's conntrack entry expires after the timeout and its next
# packet is dropped silently (no RST), like a cloud load balancer.
set -eu
cmd=${1:?up or down}
p=${2:?prefix}
c=${p}-c m=${p}-m s=${p}-s
case "$cmd" in
up)
  t=${3:-4}
  ip netns add "$c"; ip netns add "$m"; ip netns add "$s"
  ip link add vc netns "$c" type veth peer name vmc netns "$m"
  ip link add vs netns "$s" type veth peer name vms netns "$m"
  ip -n "$c" addr add 10.200.1.2/24 dev vc
  ip -n "$m" addr add 10.200.1.1/24 dev vmc
  ip -n "$m" addr add 10.200.2.1/24 dev vms
  ip -n "$s" addr add 10.200.2.2/24 dev vs
  for n in "$c" "$m" "$s"; do ip -n "$n" link set lo up; done
  ip -n "$c" link set vc up; ip -n "$s" link set vs up
  ip -n "$m" link set vmc up; ip -n "$m" link set vms up
  ip -n "$c" route add default via 10.200.1.1
  ip -n "$s" route add default via 10.200.2.1
  ip netns exec "$m" sysctl -qw net.ipv4.ip_forward=1
  ip netns exec "$m" nft -f - <<NFT
table inet holdfast_fault {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    tcp flags & (fin|syn|rst|ack) == syn ct state new accept
  }
}
NFT
  ip netns exec "$m" sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0
  ip netns exec "$m" sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_established="$t"
  ;;
down)
  for n in "$c" "$m" "$s"; do ip netns del "$n" 2>/dev/null || true; done
  ;;
*) echo "usage: $0 up PREFIX [TIMEOUT] | down PREFIX" >&2; exit 2 ;;
esac
