#!/usr/bin/env bash
# Tern's main job in network namespaces: three Calico nodes on one LAN, a pod on each, the
# node daemons reading the example resources in demo/calico/ (file datastore), in three stages:
#   1. full node-to-node mesh;
#   2. the mesh turned off in the datastore (demo/stages/mesh-off.yaml): only blackholes remain;
#   3. a route reflector node rr-1 and a BGPPeer selecting it (demo/stages/route-reflector.yaml),
#      run by tern-rr: every block is back, reflected.
# Each stage waits for convergence, prints each node's BGP routes and peers, and pings pod to
# pod across nodes. Everything it created is removed on exit (also on failure or Ctrl-C).
#
# Usage (as root):  demo/demo.sh [--daemon ternd|bird] [--keep]
#   --daemon ternd  node daemon is Tern's ternd, the reflector tern-rr (default)
#   --daemon bird   every daemon is BIRD 1.6 with the configuration confd renders for these
#                   resources (the reference Tern replaces; needs `bird` and `birdc`)
#   --keep          leave the topology up until Enter is pressed (explore with ip -n tdemo-n1 …)
# Environment: TERN_BIN=DIR runs ternd, tern-rr and ternc from DIR instead of building them
# (cargo build --release); TERND=PATH (older form) names ternd, the others are looked up beside it.
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
        -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "demo: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
done
[[ $DAEMON == ternd || $DAEMON == bird ]] || { echo "demo: --daemon is ternd or bird" >&2; exit 2; }

# The cluster, as in demo/calico/*.yaml: name, namespace suffix, node address, block, pod.
NODES=(node-1 node-2 node-3)
declare -A IP=([node-1]=10.77.0.11 [node-2]=10.77.0.12 [node-3]=10.77.0.13)
declare -A BLOCK=([node-1]=10.244.1.0/26 [node-2]=10.244.2.0/26 [node-3]=10.244.3.0/26)
declare -A POD=([node-1]=10.244.1.5 [node-2]=10.244.2.5 [node-3]=10.244.3.5)
# The route reflector of stage 3 (demo/stages/route-reflector.yaml).
RR=rr-1 RR_IP=10.77.0.10 RR_NS=tdemo-rr RR_CLUSTER=224.0.0.1
IP[$RR]=$RR_IP
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
    # TERN_BIN=DIR (or TERND=/path/to/ternd) uses those binaries instead of building them.
    if [[ -z ${TERN_BIN:-} && -n ${TERND:-} ]]; then TERN_BIN=$(dirname "$TERND"); fi
    if [[ -z ${TERN_BIN:-} ]]; then
        say "building ternd, tern-rr and ternc (cargo build --release)"
        (cd "$ROOT" && cargo build --release -q -p tern -p tern-control --bin ternd --bin tern-rr --bin ternc)
        TERN_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
    fi
    TERND=${TERND:-$TERN_BIN/ternd} TERN_RR=$TERN_BIN/tern-rr TERNC=$TERN_BIN/ternc
    for b in "$TERND" "$TERN_RR" "$TERNC"; do [[ -x $b ]] || die "no $(basename "$b") at $b"; done
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
    ip netns del "$RR_NS" 2>/dev/null || true
    ip netns del "$LAN" 2>/dev/null || true
    if [[ $rc -ne 0 ]]; then
        echo "demo: FAILED (exit $rc); daemon logs:" >&2
        for f in "$WORK"/*/daemon.log; do if [[ -f $f ]]; then echo "--- $f" >&2; tail -n 20 "$f" >&2; fi; done
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
for x in "$LAN" "$RR_NS"; do
    ip netns list | grep -qw "^$x" && die "namespace $x exists (another demo running?)"
done

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

# ---- BIRD 1.6 configuration (--daemon bird) ---------------------------------------------
# In the shape confd renders for these resources: own block blackholed and exported as one
# aggregate, the smaller address of a mesh pair passive, route-reflector clients on rr-1.
# $1 = router id, $2 = own block (none on the route reflector).
bird_common() {
    local me=$1 b=${2:-}
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
EOF
    if [[ -n $b ]]; then
        cat <<EOF
  if ( net = $b ) then { accept; }
  if ( net ~ $b && krt_metric < 1024 ) then { accept; }
  if ( net ~ $b ) then { reject; }
EOF
    fi
    cat <<EOF
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
EOF
    if [[ -n $b ]]; then echo "protocol static { route $b blackhole; }"; fi
    cat <<EOF
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
}
# $1 = protocol name, $2 = neighbour, $3 = own address, $4... = extra statements
bird_peer() {
    local name=$1 peer=$2 me=$3 x
    shift 3
    cat <<EOF
protocol bgp $name from bgp_template {
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
    for x in "$@"; do echo "  $x;"; done
    echo "}"
}
# $1 = node (or rr-1), $2 = stage (1 mesh, 2 mesh off, 3 route reflector)
bird_config() {
    local n=$1 stage=$2 m me
    if [[ $n == "$RR" ]]; then
        bird_common "$RR_IP"
        for m in "${NODES[@]}"; do
            bird_peer "Node_${IP[$m]//./_}" "${IP[$m]}" "$RR_IP" "rr client" "rr cluster id $RR_CLUSTER"
        done
        return
    fi
    me=${IP[$n]}
    bird_common "$me" "${BLOCK[$n]}"
    if [[ $stage == 1 ]]; then
        for m in "${NODES[@]}"; do
            [[ $m == "$n" ]] && continue
            # confd's rule: the side whose address string sorts first waits for the other.
            if [[ $me < ${IP[$m]} ]]; then
                bird_peer "Mesh_${IP[$m]//./_}" "${IP[$m]}" "$me" "passive on"
            else
                bird_peer "Mesh_${IP[$m]//./_}" "${IP[$m]}" "$me"
            fi
        done
    elif [[ $stage == 3 ]]; then
        bird_peer "Node_${RR_IP//./_}" "$RR_IP" "$me"
    fi
}

# ---- node daemons ----------------------------------------------------------------------
DATASTORE=$WORK/calico
mkdir -p "$DATASTORE"
cp "$RESOURCES"/*.yaml "$DATASTORE"/
# $1 = node (or rr-1), $2 = its namespace, $3 = stage
start_daemon() {
    local n=$1 N=$2 stage=$3 D=$WORK/$1 bin
    mkdir -p "$D"
    if [[ $DAEMON == ternd ]]; then
        bin=$TERND
        [[ $n == "$RR" ]] && bin=$TERN_RR
        ip netns exec "$N" env NODENAME="$n" CALICO_ENDPOINT_STATUS_PATH_PREFIX="$D" \
            "$bin" --datastore file --config-dir "$DATASTORE" --control-socket "$D/bird.ctl" \
            >"$D/daemon.log" 2>&1 &
    else
        bird_config "$n" "$stage" >"$D/bird.cfg"
        ip netns exec "$N" bird -f -c "$D/bird.cfg" -s "$D/bird.ctl" >"$D/daemon.log" 2>&1 &
    fi
    PIDS+=($!)
}
# A stage change: ternd and tern-rr follow the datastore themselves; BIRD is reconfigured the
# way confd does it (render, then `birdc configure`).
reconfigure_birds() {
    local stage=$1 n
    [[ $DAEMON == bird ]] || return 0
    for n in "${NODES[@]}"; do
        bird_config "$n" "$stage" >"$WORK/$n/bird.cfg"
        birdc -s "$WORK/$n/bird.ctl" configure >/dev/null
    done
}

# Converged: every node has a blackhole for its own block and, when $1 is "remote", every
# other node's block via that node (else none of them), all `proto bird`; never another
# node's pod /32.
converged() {
    local remote=$1 n m routes
    for n in "${NODES[@]}"; do
        routes=$(ip -n "$(ns "$n")" route show proto bird)
        grep -q "^blackhole ${BLOCK[$n]} " <<<"$routes" || return 1
        for m in "${NODES[@]}"; do
            [[ $m == "$n" ]] || ! grep -q "^${POD[$m]} " <<<"$routes" || die "$n learned ${POD[$m]}/32 (a workload route leaked)"
        done
        for m in "${NODES[@]}"; do
            [[ $m == "$n" ]] && continue
            if [[ $remote == remote ]]; then
                grep -q "^${BLOCK[$m]} via ${IP[$m]} " <<<"$routes" || return 1
            elif grep -q "^${BLOCK[$m]} " <<<"$routes"; then
                return 1
            fi
        done
    done
}
# BIRD 1.6 can take tens of seconds for a new peer: a refused first connection costs its
# `error wait time` (5 s, doubling to 30 s).
wait_converged() {
    local start=$SECONDS pid
    until converged "$1"; do
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || die "a daemon exited"; done
        (( SECONDS - start < 90 )) || die "no convergence within 90 s"
        sleep 0.5
    done
    echo "converged after $((SECONDS - start)) s"
}

# The peer list, from the daemon's BIRD-compatible control socket.
peers() {
    local sock=$WORK/$1/bird.ctl
    if [[ ! -S $sock ]]; then
        echo "(no control socket)"
    elif [[ $DAEMON == ternd ]]; then
        "$TERNC" -s "$sock" show protocols | grep -E '^(Name|name|Mesh_|Node_|Global_)' || true
    else
        birdc -s "$sock" show protocols | grep -E '^(name|Mesh_|Node_|Global_)' || true
    fi
}
show_nodes() {
    local n
    for n in "${NODES[@]}"; do
        say "$n (${IP[$n]}): ip route show proto bird"
        ip -n "$(ns "$n")" route show proto bird
        echo "-- peers"
        peers "$n"
    done
}

# Pings every pod from every other pod; $1 = "reach" (all must answer) or "no-route" (none may).
ping_pods() {
    local want=$1 n m fail=0
    for n in "${NODES[@]}"; do
        for m in "${NODES[@]}"; do
            [[ $m == "$n" ]] && continue
            if ip netns exec "$(podns "$n")" ping -c 1 -W 1 "${POD[$m]}" >/dev/null 2>&1; then
                echo "pod on $n (${POD[$n]}) -> pod on $m (${POD[$m]}): ok"
                [[ $want == reach ]] || fail=1
            else
                echo "pod on $n (${POD[$n]}) -> pod on $m (${POD[$m]}): no reply"
                [[ $want == no-route ]] || fail=1
            fi
        done
    done
    [[ $fail -eq 0 ]] || die "pod-to-pod ping did not behave as this stage expects ($want)"
}

# ---- stage 1: full mesh ----------------------------------------------------------------
say "stage 1: starting $DAEMON on each node (datastore: files in $DATASTORE)"
for n in "${NODES[@]}"; do start_daemon "$n" "$(ns "$n")" 1; done
say "waiting for the mesh to converge"
wait_converged remote
show_nodes
say "stage 1: pod to pod across nodes"
ping_pods reach

# ---- stage 2: mesh off -----------------------------------------------------------------
say "stage 2: node-to-node mesh off in the datastore (demo/stages/mesh-off.yaml)"
cp "$ROOT/demo/stages/mesh-off.yaml" "$DATASTORE/40-mesh-off.yaml"
reconfigure_birds 2
wait_converged own-only
show_nodes
say "stage 2: pod to pod (no routes between nodes now)"
ping_pods no-route

# ---- stage 3: route reflector ----------------------------------------------------------
say "stage 3: route reflector $RR ($RR_IP, cluster id $RR_CLUSTER) and a BGPPeer selecting it"
ip netns add "$RR_NS"
ip -n "$RR_NS" link set lo up
ip link add eth0 netns "$RR_NS" type veth peer name "$RR_NS" netns "$LAN"
ip -n "$LAN" link set "$RR_NS" master br0 up
ip -n "$RR_NS" addr add "$RR_IP/24" dev eth0
ip -n "$RR_NS" link set eth0 up
cp "$ROOT/demo/stages/route-reflector.yaml" "$DATASTORE/50-route-reflector.yaml"
start_daemon "$RR" "$RR_NS" 3
reconfigure_birds 3
wait_converged remote
show_nodes
say "$RR (route reflector): peers and reflected routes"
peers "$RR"
if [[ $DAEMON == ternd ]]; then
    "$TERNC" -s "$WORK/$RR/bird.ctl" show route
else
    birdc -s "$WORK/$RR/bird.ctl" show route
fi
say "stage 3: pod to pod across nodes, through reflected routes"
ping_pods reach

if [[ $KEEP -eq 1 ]]; then
    say "topology is up (namespaces tdemo-*); press Enter to tear it down"
    read -r _
fi
say "demo passed; cleaning up"
