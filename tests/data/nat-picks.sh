#!/usr/bin/env bash
# How tests/data/nat-picks.tsv was observed (as root): three namespaces (client, router, server), SNAT and
# DNAT to ranges on the router, one UDP datagram from each of many client addresses, then the router's
# conntrack table. Prints conntrack's lines, IPv4 then IPv6; tears its namespaces down.
set -euo pipefail
trap 'for n in a r b; do ip netns del kspec-lab-np-$n 2>/dev/null || true; done' EXIT
for n in a r b; do ip netns del kspec-lab-np-$n 2>/dev/null || true; ip netns add kspec-lab-np-$n; ip -n kspec-lab-np-$n link set lo up; done
ip link add ra netns kspec-lab-np-a type veth peer name ar netns kspec-lab-np-r
ip link add rb netns kspec-lab-np-b type veth peer name xb netns kspec-lab-np-r
ip -n kspec-lab-np-a link set ra up; ip -n kspec-lab-np-r link set ar up; ip -n kspec-lab-np-r link set xb up; ip -n kspec-lab-np-b link set rb up
ip -n kspec-lab-np-r addr add 10.1.0.1/24 dev ar; ip -n kspec-lab-np-r addr add 10.2.0.1/24 dev xb
for i in $(seq 2 41); do ip -n kspec-lab-np-a addr add 10.1.0.$i/24 dev ra; done
ip -n kspec-lab-np-a route add default via 10.1.0.1
ip -n kspec-lab-np-b addr add 10.2.0.2/24 dev rb; ip -n kspec-lab-np-b addr add 10.2.0.3/24 dev rb
ip netns exec kspec-lab-np-r sysctl -qw net.ipv4.ip_forward=1
ip netns exec kspec-lab-np-r iptables -t nat -A POSTROUTING -o xb -d 10.2.0.2 -j SNAT --to-source 192.168.9.10-192.168.9.17
ip netns exec kspec-lab-np-r iptables -t nat -A POSTROUTING -o xb -d 10.2.0.3 -j SNAT --to-source 192.168.9.10-192.168.9.12 --persistent
ip netns exec kspec-lab-np-r iptables -t nat -A PREROUTING -i ar -d 10.9.9.9 -j DNAT --to-destination 10.2.0.100-10.2.0.104
for i in $(seq 2 41); do
  for d in 10.2.0.2 10.2.0.3 10.9.9.9; do
  ip netns exec kspec-lab-np-a python3 -c "
import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('10.1.0.$i', 0)); s.sendto(b'x', ('$d', 9999))"
  done
done
sleep 0.3
ip netns exec kspec-lab-np-r conntrack -L -p udp 2>/dev/null
for n in a r b; do ip netns del kspec-lab-np-$n; done
for n in a r b; do ip netns del kspec-lab-np-$n 2>/dev/null || true; ip netns add kspec-lab-np-$n; ip -n kspec-lab-np-$n link set lo up; done
ip link add ra netns kspec-lab-np-a type veth peer name ar netns kspec-lab-np-r
ip link add rb netns kspec-lab-np-b type veth peer name xb netns kspec-lab-np-r
ip -n kspec-lab-np-a link set ra up; ip -n kspec-lab-np-r link set ar up; ip -n kspec-lab-np-r link set xb up; ip -n kspec-lab-np-b link set rb up
ip -n kspec-lab-np-r addr add fd01::1/64 dev ar nodad; ip -n kspec-lab-np-r addr add fd02::1/64 dev xb nodad
for i in $(seq 2 31); do ip -n kspec-lab-np-a addr add fd01::$i/64 dev ra nodad; done
ip -n kspec-lab-np-a -6 route add default via fd01::1
ip -n kspec-lab-np-b addr add fd02::2/64 dev rb nodad; ip -n kspec-lab-np-b addr add fd02::3/64 dev rb nodad
ip netns exec kspec-lab-np-r sysctl -qw net.ipv6.conf.all.forwarding=1
ip netns exec kspec-lab-np-r ip6tables -t nat -A POSTROUTING -o xb -d fd02::2 -j SNAT --to-source fd09::10-fd09::17
ip netns exec kspec-lab-np-r ip6tables -t nat -A POSTROUTING -o xb -d fd02::3 -j SNAT --to-source fd09::1:fff0-fd09::3:10
ip netns exec kspec-lab-np-r ip6tables -t nat -A PREROUTING -i ar -d fd09::9 -j DNAT --to-destination fd02::100-fd02::104
sleep 1
for i in $(seq 2 31); do
  for d in fd02::2 fd02::3 fd09::9; do
  ip netns exec kspec-lab-np-a python3 -c "
import socket; s=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(('fd01::$i', 0)); s.sendto(b'x', ('$d', 9999))"
  done
done
sleep 0.3
ip netns exec kspec-lab-np-r conntrack -L -f ipv6 -p udp 2>/dev/null
for n in a r b; do ip netns del kspec-lab-np-$n; done
