#!/usr/bin/env bash
# Tern's main job in network namespaces: three Calico nodes on one LAN, a pod on each, the
# node daemons peering in a full mesh from the example resources in demo/calico/ (file
# datastore). Waits for convergence, prints each node's BGP routes and peers, pings pod to pod
# across nodes, and removes everything it created on exit (also on failure or Ctrl-C).
#
# Usage (as root):  demo/demo.sh [--daemon ternd|bird] [--keep]
#   --daemon ternd  node daemon is Tern's ternd (default)
#   --daemon bird   node daemon is BIRD 1.6 with the configuration confd renders for these
#                   resources (the reference Tern replaces; needs `bird` and `birdc`)
#   --keep          leave the topology up until Enter is pressed (explore with ip -n tdemo-n1 …)
# Environment: TERND=PATH runs that ternd instead of building one (cargo build --release).
#
# Every address lives inside the namespaces tdemo-*; nothing is sent anywhere else.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESOURCES=$ROOT/demo/calico
DAEMON=ternd
KEEP=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --daemon) DAEMON=${2:?--daemon needs ternd or bird}; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "demo: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
done
[[ $DAEMON == ternd || $DAEMON == bird ]] || { echo "demo: --daemon is ternd or bird" >&2; exit 2; }

# The cluster, as in demo/calico/*.yaml: name, namespace suffix, node address, block, pod.
NODES=(node-1 node-2 node-3)
declare -A IP=([node-1]=10.77.0.11 [node-2]=10.77.0.12 [node-3]=10.77.0.13)
declare -A BLOCK=([node-1]=10.244.1.0/26 [node-2]=10.244.2.0/26 [node-3]=10.244.3.0/26)
declare -A POD=([node-1]=10.244.1.5 [node-2]=10.244.2.5 [node-3]=10.244.3.5)
POOL=10.244.0.0/16
AS=64512
LAN=tdemo-lan
ns() { echo "tdemo-n${1#node-}"; }       # node namespace
podns() { echo "tdemo-p${1#node-}"; }    # workload namespace
# Felix names a workload's host-side veth "cali" + 11 hex digits of a hash of its endpoint.
cali() { echo "cali$(printf '%s' "default.pod-${1#node-}" | sha1sum | cut -c1-11)"; }

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run me as root (I create network namespaces)"

# ---- prerequisites ---------------------------------------------------------------------
need_apt=()
command -v ip >/dev/null || need_apt+=(iproute2)
command -v ping >/dev/null || need_apt+=(iputils-ping)
if [[ ${#need_apt[@]} -gt 0 ]]; then
    say "installing ${need_apt[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_apt[@]}" >/dev/null
fi
if [[ $DAEMON == ternd ]]; then
    # TERND=/path/to/ternd uses that binary instead of building one.
    if [[ -z ${TERND:-} ]]; then
        say "building ternd (cargo build --release)"
        (cd "$ROOT" && cargo build --release -q -p tern --bin ternd)
        TERND=${CARGO_TARGET_DIR:-$ROOT/target}/release/ternd
    fi
    [[ -x $TERND ]] || die "no ternd at $TERND"
    # The control socket (BIRD's CLI protocol) goes under the demo's temporary folder.
    TERND_SOCKET_FLAG=()
    "$TERND" --help | grep -q -- --control-socket && TERND_SOCKET_FLAG=(--control-socket=)
else
    command -v bird >/dev/null || die "--daemon bird needs BIRD 1.6 (apt-get install bird)"
    command -v birdc >/dev/null || die "--daemon bird needs birdc"
fi

# ---- cleanup ---------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/tern-demo.XXXXXX)
PIDS=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    for n in "${NODES[@]}"; do
        ip netns del "$(podns "$n")" 2>/dev/null || true
        ip netns del "$(ns "$n")" 2>/dev/null || true
    done
    ip netns del "$LAN" 2>/dev/null || true
    if [[ $rc -ne 0 ]]; then
        echo "demo: FAILED (exit $rc); daemon logs:" >&2
        for f in "$WORK"/*/daemon.log; do [[ -f $f ]] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for n in "${NODES[@]}"; do
    for x in "$(ns "$n")" "$(podns "$n")"; do
        ip netns list | grep -qw "^$x" && die "namespace $x exists (another demo running?)"
    done
done
ip netns list | grep -qw "^$LAN" && die "namespace $LAN exists (another demo running?)"

# ---- topology --------------------------------------------------------------------------
say "building the LAN 10.77.0.0/24 and three nodes with a pod each"
ip netns add "$LAN"
ip -n "$LAN" link set lo up
ip -n "$LAN" link add br0 type bridge
ip -n "$LAN" link set br0 up
for n in "${NODES[@]}"; do
    N=$(ns "$n") P=$(podns "$n") C=$(cali "$n")
    ip netns add "$N"
    ip netns add "$P"
    ip -n "$N" link set lo up
    ip -n "$P" link set lo up
    ip netns exec "$N" sysctl -qw net.ipv4.ip_forward=1
    # The node's LAN interface, plugged into the bridge.
    ip link add eth0 netns "$N" type veth peer name "$N" netns "$LAN"
    ip -n "$LAN" link set "$N" master br0 up
    ip -n "$N" addr add "${IP[$n]}/24" dev eth0
    ip -n "$N" link set eth0 up
    # The pod, wired the way Felix wires it: a /32 on the pod's eth0, a default route via
    # 169.254.1.1, proxy ARP on the host-side cali veth, and a /32 host route at Felix's
    # normal route priority (metric 1024, Calico v3.32+), which BGP must not advertise: the
    # block is. A real host answers the ARP for 169.254.1.1 because it has a default route;
    # these namespaces have none, so the pod gets that neighbour entry statically.
    ip link add eth0 netns "$P" type veth peer name "$C" netns "$N"
    ip netns exec "$N" sysctl -qw "net.ipv4.conf.$C.proxy_arp=1"
    ip netns exec "$N" sysctl -qw "net.ipv4.neigh.$C.proxy_delay=0"
    ip -n "$N" link set "$C" up
    ip -n "$N" route add "${POD[$n]}/32" dev "$C" scope link metric 1024
    ip -n "$P" addr add "${POD[$n]}/32" dev eth0
    ip -n "$P" link set eth0 up
    ip -n "$P" route add 169.254.1.1 dev eth0 scope link
    ip -n "$P" route add default via 169.254.1.1 dev eth0
    ip -n "$P" neigh replace 169.254.1.1 lladdr "$(ip -n "$N" -br link show "$C" | awk '{print $3}')" \
        dev eth0 nud permanent
done

# ---- node daemons ----------------------------------------------------------------------
# BIRD 1.6 configuration in the shape confd renders for these resources (full mesh, the
# smaller address passive, own block blackholed and exported as one aggregate).
bird_config() {
    local n=$1 me=${IP[$1]} b=${BLOCK[$1]}
    cat <<EOF
router id $me;
filter calico_kernel_programming {
  if (defined(source) && (source = RTS_BGP) && !defined(krt_metric)) then {
    krt_metric = 1024;
    if (defined(bgp_local_pref)) then { krt_metric = 2147483647 - bgp_local_pref; }
    if (krt_metric < 1024) then { preference = 200; }
  }
  if (net ~ $POOL) then { accept; }
  accept;
}
function calico_aggr () {
  if ( net = $b ) then { accept; }
  if ( net ~ $b && krt_metric < 1024 ) then { accept; }
  if ( net ~ $b ) then { reject; }
}
function calico_export_to_bgp_peers(bool internal_peer) {
  if (internal_peer) then {
    if (defined(ifname)) then {
      if ((ifname ~ "*.cali") || (ifname ~ "*.calico") || (ifname ~ "tunl0")) then { reject; }
    }
  }
  calico_aggr();
  if (net ~ $POOL) then { accept; }
}
protocol static { route $b blackhole; }
protocol kernel {
  learn; persist; scan time 2; import all; graceful restart; merge paths on;
  export filter calico_kernel_programming;
}
protocol device { scan time 2; }
protocol direct { interface -"cali*", -"kube-ipvs*", "*"; }
template bgp bgp_template {
  local as $AS;
  gateway recursive;
  add paths on;
  graceful restart;
  connect delay time 2;
  connect retry time 5;
  error wait time 5,30;
}
EOF
    local m
    for m in "${NODES[@]}"; do
        [[ $m == "$n" ]] && continue
        local peer=${IP[$m]}
        cat <<EOF
protocol bgp Mesh_${peer//./_} from bgp_template {
  neighbor $peer as $AS;
  source address $me;
  ttl security off;
  multihop;
  import filter {
    if (defined(bgp_local_pref)&&(bgp_local_pref > 2147482623)) then preference = 200;
    accept;
  };
  export filter {
    if (defined(source) && source = RTS_BGP && defined(bgp_local_pref)) then {
      krt_metric = 2147483647 - bgp_local_pref;
    } else {
      if (!defined(krt_metric)) then { krt_metric = 1024; }
      bgp_local_pref = 2147483647 - krt_metric;
    }
    calico_export_to_bgp_peers(true);
    reject;
  };
EOF
        # confd's rule: the side whose address string sorts first waits for the other.
        [[ $me < $peer ]] && echo "  passive on;"
        echo "}"
    done
}

DATASTORE=$WORK/calico
mkdir -p "$DATASTORE"
cp "$RESOURCES"/*.yaml "$DATASTORE"/
say "starting $DAEMON on each node (datastore: files in $DATASTORE)"
for n in "${NODES[@]}"; do
    N=$(ns "$n") D=$WORK/$n
    mkdir -p "$D"
    if [[ $DAEMON == ternd ]]; then
        ip netns exec "$N" env NODENAME="$n" "$TERND" --datastore file --config-dir "$DATASTORE" \
            "${TERND_SOCKET_FLAG[@]/%/$D/bird.ctl}" >"$D/daemon.log" 2>&1 &
    else
        bird_config "$n" >"$D/bird.cfg"
        ip netns exec "$N" bird -f -c "$D/bird.cfg" -s "$D/bird.ctl" >"$D/daemon.log" 2>&1 &
    fi
    PIDS+=($!)
done

# ---- convergence -----------------------------------------------------------------------
# Converged: every node has a blackhole for its own block and every other node's block via
# that node, both `proto bird`, and no other node's pod /32.
converged() {
    local n m routes
    for n in "${NODES[@]}"; do
        routes=$(ip -n "$(ns "$n")" route show proto bird)
        grep -q "^blackhole ${BLOCK[$n]} " <<<"$routes" || return 1
        for m in "${NODES[@]}"; do
            [[ $m == "$n" ]] || ! grep -q "^${POD[$m]} " <<<"$routes" || die "$n learned ${POD[$m]}/32 (a workload route leaked)"
        done
        for m in "${NODES[@]}"; do
            [[ $m == "$n" ]] && continue
            grep -q "^${BLOCK[$m]} via ${IP[$m]} " <<<"$routes" || return 1
        done
    done
}
say "waiting for the mesh to converge"
start=$SECONDS
until converged; do
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || die "a node daemon exited"; done
    (( SECONDS - start < 60 )) || die "no convergence within 60 s"
    sleep 0.5
done
echo "converged after $((SECONDS - start)) s"

peers() {
    local n=$1 D=$WORK/$1
    # Both daemons answer BIRD's CLI protocol on their control socket.
    if [[ ! -S $D/bird.ctl ]]; then
        echo "(no control socket)"
    elif command -v birdc >/dev/null; then
        birdc -s "$D/bird.ctl" show protocols | grep -E '^(name|Mesh_)'
    else
        echo "(install bird to read the peer list with birdc)"
    fi
}
for n in "${NODES[@]}"; do
    say "$n (${IP[$n]}): ip route show proto bird"
    ip -n "$(ns "$n")" route show proto bird
    echo "-- peers"
    peers "$n"
done

# ---- pod to pod ------------------------------------------------------------------------
say "pod to pod across nodes"
fail=0
for n in "${NODES[@]}"; do
    for m in "${NODES[@]}"; do
        [[ $m == "$n" ]] && continue
        if ip netns exec "$(podns "$n")" ping -c 1 -W 2 "${POD[$m]}" >/dev/null; then
            echo "pod on $n (${POD[$n]}) -> pod on $m (${POD[$m]}): ok"
        else
            echo "pod on $n (${POD[$n]}) -> pod on $m (${POD[$m]}): NO REPLY"
            fail=1
        fi
    done
done
[[ $fail -eq 0 ]] || die "pod-to-pod ping failed"

if [[ $KEEP -eq 1 ]]; then
    say "topology is up (namespaces tdemo-*); press Enter to tear it down"
    read -r _
fi
say "demo passed; cleaning up"
