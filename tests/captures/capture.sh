#!/usr/bin/env bash
# Records real BGP sessions between BIRD 1.6, BIRD 2, GoBGP, FRR and ExaBGP in network
# namespaces, and writes the captures bgp-decode's tests replay:
#
#   tests/data/captures/<peer>.pcap              tcpdump of every session of that peer
#   tests/data/captures/<peer>/<n>_<src>_<dst>.bin  one raw BGP message stream per TCP direction
#   tests/data/captures/MANIFEST                 what each peer announced (for reviewers)
#   fuzz/seeds/<target>/                         seed corpus for the fuzz targets, from these
#
# Topology: one bridge in namespace tcap-hub; each daemon in its own namespace joined to it
# by a veth (eth0), on 10.99.0.0/24 and fd00:99::/64 only. BIRD 2 is the hub of the sessions:
#
#   bird16 (AS 65001, bird + bird6) --eBGP, IPv4 session as 2-octet AS (enable as4 off),
#                                      IPv6 session with ADD-PATH; link-local next hops
#   gobgp  (AS 4200000002)           --iBGP (LOCAL_PREF), IPv4 + IPv6 sessions, ADD-PATH, GR
#   frr    (AS 65004)                --eBGP, IPv4 + IPv6 sessions, extended messages
#   exabgp (AS 65005)                --eBGP, IPv4 session carrying IPv4 and IPv6 (MP-BGP)
#   bird2  (AS 4200000002)           the hub; extended messages, GR, LLGR, ADD-PATH
#
# The script then asks for ROUTE-REFRESH, withdraws routes, and shuts sessions down with an
# RFC 8203 shutdown communication, so every message type appears. Re-run as root:
#   tests/captures/capture.sh [OUTDIR]      (default tests/data/captures)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=${1:-$ROOT/tests/data/captures}
BIRD2_PREFIX=${TERN_BIRD2_PREFIX:-/opt/tern-test/bird2}
BIRD2="$BIRD2_PREFIX/usr/sbin/bird"
BIRD2C="$BIRD2_PREFIX/usr/sbin/birdc"
BIRD2_LIB="$BIRD2_PREFIX/usr/lib/x86_64-linux-gnu"
BGPD=${BGPD:-/usr/lib/frr/bgpd}

[ "$(id -u)" = 0 ] || { echo "capture.sh must run as root (network namespaces)" >&2; exit 1; }
for b in bird bird6 birdc gobgpd gobgp exabgp tcpdump vtysh "$BGPD" "$BIRD2"; do
  command -v "$b" >/dev/null || [ -x "$b" ] || { echo "missing $b (run ./test.sh as root)" >&2; exit 1; }
done

RUN=$(mktemp -d /tmp/tern-capture.XXXXXX)
PEERS=(bird16 bird2 gobgp frr exabgp)
declare -A IDX=([bird16]=1 [bird2]=2 [gobgp]=3 [frr]=4 [exabgp]=5)
PIDS=()
DUMP_PIDS=()

ns() { echo "tcap-$1"; }
in_ns() { local n=$1; shift; ip netns exec "$(ns "$n")" "$@"; }

cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 1
  for p in "${DUMP_PIDS[@]}"; do kill -INT "$p" 2>/dev/null; done
  sleep 1
  for n in "${PEERS[@]}" hub; do ip netns del "$(ns "$n")" 2>/dev/null; done
  echo "logs and configs kept in $RUN"
}
trap cleanup EXIT

# Control commands report failures but do not abort: the capture is still worth keeping.
ctl() { "$@" || log "FAILED: $*"; }
log() { printf '[capture] %s\n' "$*"; }

# ---- namespaces ---------------------------------------------------------------------------
for n in "${PEERS[@]}" hub; do
  ip netns del "$(ns "$n")" 2>/dev/null || true
  ip netns add "$(ns "$n")"
  # No duplicate address detection: link-local next hops must be usable at once.
  in_ns "$n" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
  ip -n "$(ns "$n")" link set lo up
done
ip -n "$(ns hub)" link add br0 type bridge
ip -n "$(ns hub)" link set br0 up
for n in "${PEERS[@]}"; do
  i=${IDX[$n]}
  ip -n "$(ns hub)" link add "v-$n" type veth peer name eth0 netns "$(ns "$n")"
  ip -n "$(ns hub)" link set "v-$n" master br0 up
  ip -n "$(ns "$n")" addr add "10.99.0.$i/24" dev eth0
  ip -n "$(ns "$n")" addr add "fd00:99::$i/64" dev eth0 nodad
  ip -n "$(ns "$n")" link set eth0 up
done

mkdir -p "$OUT"
for n in "${PEERS[@]}"; do
  ip netns exec "$(ns "$n")" tcpdump -i eth0 -U -s 0 -w "$RUN/$n.pcap" 'tcp port 179' 2>"$RUN/tcpdump-$n.log" &
  DUMP_PIDS+=($!)
done
sleep 2

# ---- BIRD 1.6 (bird for IPv4, bird6 for IPv6) ----------------------------------------------
cat >"$RUN/bird16.conf" <<EOF
log "$RUN/bird16.log" all;
router id 10.99.0.1;
protocol device { }
protocol static s4 {
  route 10.99.10.0/24 unreachable;
  route 10.99.11.0/24 unreachable;
  route 10.99.12.0/23 unreachable;
}
filter out4 {
  if proto = "s4" then {
    bgp_med = 10;
    bgp_community.add((65001,10));
    bgp_large_community.add((65001,1,10));
    bgp_ext_community.add((rt,65001,10));
    if net = 10.99.12.0/23 then bgp_community.add((65535,65281));
    accept;
  }
  accept;
}
protocol bgp b2 {
  local 10.99.0.1 as 65001;
  # A 2-octet AS session: BIRD 2's 4-octet AS appears as AS_TRANS, paths carry AS4_PATH.
  neighbor 10.99.0.2 as 23456;
  enable as4 off;
  graceful restart on;
  connect delay time 1;
  connect retry time 2;
  error wait time 1,5;
  import all;
  export filter out4;
}
EOF
cat >"$RUN/bird16v6.conf" <<EOF
log "$RUN/bird16v6.log" all;
router id 10.99.0.1;
protocol device { }
protocol static s6 {
  route fd00:99:10::/48 unreachable;
  route fd00:99:11::/48 unreachable;
}
filter out6 {
  if proto = "s6" then {
    bgp_community.add((65001,60));
    bgp_large_community.add((65001,6,0));
  }
  accept;
}
protocol bgp b2 {
  local fd00:99::1 as 65001;
  neighbor fd00:99::2 as 4200000002;
  add paths on;
  graceful restart on;
  connect delay time 1;
  connect retry time 2;
  error wait time 1,5;
  import all;
  export filter out6;
}
EOF

# ---- BIRD 2 --------------------------------------------------------------------------------
{
  echo "log \"$RUN/bird2.log\" all;"
  echo "router id 10.99.0.2;"
  echo "protocol device { }"
  echo "protocol static s4 { ipv4;"
  echo "  route 10.99.20.0/24 unreachable;"
  # 256 /28s with one attribute set: an UPDATE carrying many NLRI.
  for a in $(seq 128 143); do for b in $(seq 0 16 240); do echo "  route 10.99.$a.$b/28 unreachable;"; done; done
  echo "}"
  echo "protocol static s6 { ipv6;"
  echo "  route fd00:99:20::/48 unreachable;"
  for a in $(seq 0 63); do printf '  route fd00:99:21:%x::/64 unreachable;\n' "$a"; done
  echo "}"
} >"$RUN/bird2.conf"
cat >>"$RUN/bird2.conf" <<'EOF'
filter out_ebgp {
  if proto = "s4" || proto = "s6" then {
    bgp_med = 20;
    bgp_community.add((64512,20));
    bgp_large_community.add((4200000002,20,1));
    bgp_ext_community.add((rt,4200000002,20));
    if net = 10.99.20.0/24 then bgp_path.prepend(4200000099);
  }
  accept;
}
filter out_ibgp {
  if proto = "s4" || proto = "s6" then {
    bgp_local_pref = 250;
    bgp_community.add((64512,21));
  }
  accept;
}
template bgp common {
  local as 4200000002;
  enable extended messages on;
  graceful restart on;
  long lived graceful restart on;
  connect delay time 1;
  connect retry time 2;
  error wait time 1,5;
}
protocol bgp bird16 from common {
  local 10.99.0.2 as 4200000002;
  neighbor 10.99.0.1 as 65001;
  ipv4 { import all; export filter out_ebgp; };
}
protocol bgp bird16v6 from common {
  local fd00:99::2 as 4200000002;
  neighbor fd00:99::1 as 65001;
  ipv6 { import all; export filter out_ebgp; add paths on; };
}
protocol bgp gobgp from common {
  local 10.99.0.2 as 4200000002;
  neighbor 10.99.0.3 as 4200000002;
  ipv4 { import all; export filter out_ibgp; add paths on; next hop self; };
}
protocol bgp gobgpv6 from common {
  local fd00:99::2 as 4200000002;
  neighbor fd00:99::3 as 4200000002;
  ipv6 { import all; export filter out_ibgp; add paths on; next hop self; };
}
protocol bgp frr from common {
  local 10.99.0.2 as 4200000002;
  neighbor 10.99.0.4 as 65004;
  ipv4 { import all; export filter out_ebgp; };
}
protocol bgp frrv6 from common {
  local fd00:99::2 as 4200000002;
  neighbor fd00:99::4 as 65004;
  ipv6 { import all; export filter out_ebgp; };
}
protocol bgp exabgp from common {
  local 10.99.0.2 as 4200000002;
  neighbor 10.99.0.5 as 65005;
  passive on;
  ipv4 { import all; export filter out_ebgp; };
  ipv6 { import all; export none; };
}
EOF

# ---- GoBGP ---------------------------------------------------------------------------------
cat >"$RUN/gobgp.toml" <<'EOF'
[global.config]
  as = 4200000002
  router-id = "10.99.0.3"
  local-address-list = ["10.99.0.3", "fd00:99::3"]
[[neighbors]]
  [neighbors.config]
    neighbor-address = "10.99.0.2"
    peer-as = 4200000002
  [neighbors.timers.config]
    connect-retry = 2
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 120
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
    [neighbors.afi-safis.add-paths.config]
      receive = true
      send-max = 4
[[neighbors]]
  [neighbors.config]
    neighbor-address = "fd00:99::2"
    peer-as = 4200000002
  [neighbors.timers.config]
    connect-retry = 2
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 120
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
    [neighbors.afi-safis.add-paths.config]
      receive = true
      send-max = 4
EOF

# ---- FRR bgpd (standalone, no zebra) -------------------------------------------------------
mkdir -p "$RUN/frr"
cat >"$RUN/frr/bgpd.conf" <<EOF
hostname frr
log file $RUN/frr.log
!
router bgp 65004
 bgp router-id 10.99.0.4
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
 neighbor 10.99.0.2 remote-as 4200000002
 neighbor 10.99.0.2 timers connect 2
 neighbor fd00:99::2 remote-as 4200000002
 neighbor fd00:99::2 timers connect 2
 !
 address-family ipv4 unicast
  network 10.99.40.0/24 route-map SET4
  network 10.99.41.0/24
  network 10.99.77.0/24
  neighbor 10.99.0.2 activate
 exit-address-family
 !
 address-family ipv6 unicast
  network fd00:99:40::/48 route-map SET6
  neighbor fd00:99::2 activate
 exit-address-family
!
route-map SET4 permit 10
 set community 65004:40 65535:0 additive
 set large-community 65004:4:40 additive
 set extcommunity rt 65004:40
 set metric 40
 set origin incomplete
!
route-map SET6 permit 10
 set community 65004:60
 set large-community 65004:6:0
!
EOF

# ---- ExaBGP --------------------------------------------------------------------------------
cat >"$RUN/exabgp.conf" <<'EOF'
neighbor 10.99.0.2 {
  router-id 10.99.0.5;
  local-address 10.99.0.5;
  local-as 65005;
  peer-as 4200000002;
  family {
    ipv4 unicast;
    ipv6 unicast;
  }
  capability {
    route-refresh;
    graceful-restart 120;
  }
  static {
    route 10.99.50.0/24 next-hop 10.99.0.5 origin igp med 50 as-path [ 65005 4200000050 ] community [ 65005:50 no-export ] large-community [ 65005:5:50 ] extended-community [ target:65005:50 ] atomic-aggregate aggregator ( 65005:10.99.0.5 );
    route 10.99.51.0/24 next-hop 10.99.0.5 origin egp as-path [ 65005 ] attribute [ 0x63 0xc0 0xdeadbeef ];
    route 10.99.77.0/24 next-hop 10.99.0.5 as-path [ 65005 ];
    route fd00:99:50::/48 next-hop fd00:99::5 as-path [ 65005 ] community [ 65005:60 ];
  }
}
EOF

# ---- start ---------------------------------------------------------------------------------
log "starting daemons"
ip netns exec "$(ns bird16)" bird -f -c "$RUN/bird16.conf" -s "$RUN/bird16.ctl" -P "$RUN/bird16.pid" &
PIDS+=($!)
ip netns exec "$(ns bird16)" bird6 -f -c "$RUN/bird16v6.conf" -s "$RUN/bird16v6.ctl" -P "$RUN/bird16v6.pid" &
PIDS+=($!)
ip netns exec "$(ns bird2)" env LD_LIBRARY_PATH="$BIRD2_LIB" "$BIRD2" -f -c "$RUN/bird2.conf" -s "$RUN/bird2.ctl" -P "$RUN/bird2.pid" &
PIDS+=($!)
ip netns exec "$(ns gobgp)" gobgpd -f "$RUN/gobgp.toml" -t toml -l info >"$RUN/gobgpd.log" 2>&1 &
PIDS+=($!)
ip netns exec "$(ns frr)" "$BGPD" -Z -S -u root -g root --vty_socket "$RUN/frr" -f "$RUN/frr/bgpd.conf" \
  -i "$RUN/frr/bgpd.pid" >"$RUN/frr.out" 2>&1 &
PIDS+=($!)
ip netns exec "$(ns exabgp)" env exabgp_daemon_user=root exabgp_daemon_daemonize=false exabgp_api_cli=false \
  exabgp_log_destination="$RUN/exabgp.log" exabgp "$RUN/exabgp.conf" >"$RUN/exabgp.out" 2>&1 &
PIDS+=($!)

bird2c() { ip netns exec "$(ns bird2)" env LD_LIBRARY_PATH="$BIRD2_LIB" "$BIRD2C" -s "$RUN/bird2.ctl" "$@"; }
vty() { in_ns frr vtysh --vty_socket "$RUN/frr" "$@"; }

# GoBGP's locally originated routes (iBGP to BIRD 2: LOCAL_PREF, ADD-PATH).
for _ in $(seq 50); do in_ns gobgp gobgp global >/dev/null 2>&1 && break; sleep 0.2; done
in_ns gobgp gobgp global rib -a ipv4 add 10.99.30.0/24 nexthop 10.99.0.3 origin egp \
  med 30 local-pref 300 community 65003:30,65535:65282 large-community 4200000002:3:30 \
  aspath 4200000030,65030
in_ns gobgp gobgp global rib -a ipv4 add 10.99.31.0/24 nexthop 10.99.0.3 local-pref 310
in_ns gobgp gobgp global rib -a ipv4 add 10.99.77.0/24 nexthop 10.99.0.3
in_ns gobgp gobgp global rib -a ipv6 add fd00:99:30::/48 nexthop fd00:99::3 \
  community 65003:60 local-pref 300

log "waiting for the sessions"
want="bird16 bird16v6 gobgp gobgpv6 frr frrv6 exabgp"
for _ in $(seq 120); do
  up=$(bird2c show protocols | awk '$2 == "BGP" && $6 == "Established" {print $1}' | sort | tr '\n' ' ')
  all=1
  for p in $want; do case " $up " in *" $p "*) ;; *) all=0 ;; esac; done
  [ $all = 1 ] && break
  sleep 0.5
done
bird2c show protocols
[ $all = 1 ] || { echo "not every session came up" >&2; exit 1; }
sleep 4

log "route refresh, withdrawals"
ctl bird2c reload in frr
ctl bird2c reload in gobgp
ctl bird2c reload in exabgp
ctl in_ns bird16 birdc -s "$RUN/bird16.ctl" reload in b2
ctl in_ns gobgp gobgp neighbor 10.99.0.2 softresetin
ctl vty -c 'clear bgp ipv6 unicast fd00:99::2 soft in'
ctl in_ns gobgp gobgp global rib -a ipv4 del 10.99.31.0/24
ctl in_ns gobgp gobgp global rib -a ipv6 del fd00:99:30::/48
ctl vty -c 'configure terminal' -c 'router bgp 65004' -c 'address-family ipv4 unicast' \
  -c 'no network 10.99.41.0/24'
sleep 3

log "administrative shutdowns with a shutdown communication"
ctl in_ns bird16 birdc -s "$RUN/bird16.ctl" \
  'disable b2 "bird16: maintenance window"'
# birdc joins its arguments: the message must reach it quoted.
ctl bird2c 'disable bird16v6 "bird2: moving bird16v6 to a new router"'
ctl bird2c 'disable exabgp "bird2: exabgp session retired"'
ctl in_ns gobgp gobgp neighbor fd00:99::2 shutdown --reason "gobgp: planned shutdown"
ctl vty -c 'configure terminal' -c 'router bgp 65004' \
  -c 'neighbor 10.99.0.2 shutdown message frr: link maintenance'
sleep 3
bird2c show protocols

# Stop daemons first (their own Cease NOTIFICATIONs are captured), then tcpdump.
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
PIDS=()
sleep 2
for p in "${DUMP_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
wait "${DUMP_PIDS[@]}" 2>/dev/null || true
DUMP_PIDS=()

# ---- results -------------------------------------------------------------------------------
log "writing $OUT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
for n in "${PEERS[@]}"; do cp "$RUN/$n.pcap" "$OUT/$n.pcap"; done
cargo build -q -p bgp-decode --example pcap-streams --example fuzz-seeds
for n in "${PEERS[@]}"; do
  rm -rf "${OUT:?}/$n"
  "$CARGO_TARGET_DIR/debug/examples/pcap-streams" "$OUT/$n.pcap" "$OUT/$n"
done
# The fuzz seed corpus comes from the committed captures only.
if [ "$OUT" = "$ROOT/tests/data/captures" ]; then
  "$CARGO_TARGET_DIR/debug/examples/fuzz-seeds" "$OUT" "$ROOT/fuzz/seeds"
fi
cat >"$OUT/MANIFEST" <<'EOF'
Recorded by tests/captures/capture.sh (see its header for the topology).
<peer>.pcap: every TCP port-179 packet on that peer's eth0 (both directions).
<peer>/<n>_<src>_<dst>.bin: the n-th TCP stream direction of that capture, as raw BGP messages.

Announced (and what bgp-decode's tests check):
bird16 (AS 65001, 2-octet session to bird2):
  10.99.10.0/24 10.99.11.0/24 10.99.12.0/23  MED 10, community 65001:10, large 65001:1:10,
  ext rt 65001:10; 10.99.12.0/23 also NO_EXPORT.  bird6: fd00:99:10::/48 fd00:99:11::/48
  community 65001:60, large 65001:6:0, ADD-PATH with bird2.
bird2 (AS 4200000002): 10.99.20.0/24 (path prepended 4200000099), 256 x 10.99.128-143.x/28,
  fd00:99:20::/48, 64 x fd00:99:21:N::/64; eBGP: MED 20, community 64512:20,
  large 4200000002:20:1, ext rt 4200000002:20; iBGP (gobgp): LOCAL_PREF 250, community 64512:21.
gobgp (AS 4200000002, iBGP): 10.99.30.0/24 (origin egp, MED 30, LOCAL_PREF 300,
  communities 65003:30 NO_ADVERTISE, large 4200000002:3:30, path 4200000030 65030),
  10.99.31.0/24 (withdrawn later), 10.99.77.0/24, fd00:99:30::/48 (withdrawn later).
frr (AS 65004): 10.99.40.0/24 (origin incomplete, MED 40, communities 65004:40 GRACEFUL_SHUTDOWN,
  large 65004:4:40, ext rt 65004:40), 10.99.41.0/24 (withdrawn later), 10.99.77.0/24,
  fd00:99:40::/48 (community 65004:60, large 65004:6:0).
exabgp (AS 65005): 10.99.50.0/24 (MED 50, path 65005 4200000050, community 65005:50 NO_EXPORT,
  large 65005:5:50, ext target 65005:50, ATOMIC_AGGREGATE, AGGREGATOR 65005 10.99.0.5),
  10.99.51.0/24 (unknown optional transitive attribute 0x63), 10.99.77.0/24,
  fd00:99:50::/48 (community 65005:60).
Shutdown communications (RFC 9003): "bird16: maintenance window", "bird2: moving bird16v6 to
  a new router", "bird2: exabgp session retired", "gobgp: planned shutdown" (GoBGP sends the
  text with `shutdown --reason`, not with `disable`), "frr: link maintenance".
EOF
du -sh "$OUT"
log "done"
